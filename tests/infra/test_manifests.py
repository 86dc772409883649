"""Every Kubernetes object the program declares is a valid object of a pinned Kubernetes version."""

from __future__ import annotations

import kubernetes_validate
import pytest
from crd_schema import problems, validator
from mlflow_platform.policies import check_pod_spec
from mock_harness import KUBERNETES_VERSION, REPO, manifests

# Custom resources are checked against the CRD of the pinned release that installs them.
CRDS = {"ray.io/v1": REPO / "tests" / "infra" / "fixtures" / "kuberay-v1.7.0" / "ray.io_rayclusters.yaml"}

VARIANTS = {
    "default": {},
    "auth-loadbalancer-irsa": {
        "basicAuth": "true",
        "serviceType": "LoadBalancer",
        "tlsCertificateArn": "arn:aws:acm:us-east-1:123456789012:certificate/0f0e0d0c-0000-4000-8000-000000000001",
        "loadBalancerSourceRanges": "203.0.113.0/24",
        "s3Identity": "irsa",
        "irsaRoleArn": "arn:aws:iam::123456789012:role/mlflow",
        "postgresStorageClass": "gp3",
    },
    "microk8s": {"clusterKind": "other", "postgresStorageClass": "microk8s-hostpath", "keepDataOnDestroy": "false"},
    "ray": {"ray": "true", "rayImageTag": "0a1b2c3"},
    "serving": {"serving": "true", "servingImageTag": "0a1b2c3", "servingGpus": "1", "servingReplicas": "2"},
}


@pytest.mark.parametrize("variant", VARIANTS)
def test_every_kubernetes_object_validates_against_the_openapi_schema(deploy, variant: str) -> None:
    rendered = manifests(deploy(VARIANTS[variant]))
    kinds = {m["kind"] for m in rendered}
    assert {
        "Namespace",
        "Secret",
        "Service",
        "StatefulSet",
        "Deployment",
        "ServiceAccount",
        "Role",
        "RoleBinding",
        "NetworkPolicy",
    } <= kinds
    # On EKS without a named class, the stack's own EBS StorageClass is validated like every other object.
    assert ("StorageClass" in kinds) == (variant in ("default", "ray", "serving"))
    assert ("PodDisruptionBudget" in kinds) == (variant == "serving")
    assert ("RayCluster" in kinds) == (variant == "ray")
    for manifest in rendered:
        if manifest["apiVersion"] in CRDS:
            assert problems(validator(CRDS[manifest["apiVersion"]], "v1"), manifest) == [], manifest["kind"]
            continue
        try:
            kubernetes_validate.validate(manifest, KUBERNETES_VERSION, strict=True)
        except kubernetes_validate.ValidationError as e:
            path = ".".join(str(p) for p in e.path)
            pytest.fail(f"{manifest['kind']}/{manifest['metadata']['name']}: {path}: {e.message}")


def test_the_job_template_validates_and_meets_the_namespace_pod_security(default_deployment) -> None:
    template = default_deployment.exports["kube_job_template"]
    kubernetes_validate.validate(template, KUBERNETES_VERSION, strict=True)
    assert check_pod_spec(template["spec"]["template"]["spec"]) == []


def test_validation_would_catch_a_broken_manifest() -> None:
    with pytest.raises(kubernetes_validate.ValidationError):
        kubernetes_validate.validate(
            {"apiVersion": "v1", "kind": "Service", "metadata": {"name": "x"}, "spec": {"ports": [{"port": "http"}]}},
            KUBERNETES_VERSION,
            strict=True,
        )


def test_pod_check_refuses_a_request_above_its_limit(default_deployment) -> None:
    """The API server refuses such a pod; the same check runs over every declared pod and the job template."""
    pod = default_deployment.exports["kube_job_template"]["spec"]["template"]["spec"]
    container = pod["containers"][0]
    limits = container["resources"]["limits"]
    broken = {**container, "resources": {"requests": {"cpu": "4", "memory": "25Gi"}, "limits": limits}}
    problems = check_pod_spec({**pod, "containers": [broken]})
    assert problems == [f"container {container['name']}: memory request 25Gi exceeds its limit 24Gi"]
    equal = {**container, "resources": {"requests": {"cpu": "4", "memory": "24576Mi"}, "limits": limits}}
    assert check_pod_spec({**pod, "containers": [equal]}) == []  # the same amount in another spelling
