"""GPU device plugin, training ServiceAccount/RBAC, and the database NetworkPolicy."""

from __future__ import annotations

from mock_harness import Deployment

HELM = "kubernetes:helm.sh/v3:Release"


def test_device_plugin_is_a_pinned_helm_release_tolerating_gpu_taint(default_deployment: Deployment) -> None:
    release = default_deployment.one(HELM).inputs
    assert release["chart"] == "nvidia-device-plugin"
    assert release["version"] == "0.20.0"
    assert release["repositoryOpts"]["repo"] == "https://nvidia.github.io/k8s-device-plugin"
    assert {"key": "nvidia.com/gpu", "operator": "Exists", "effect": "NoSchedule"} in release["values"]["tolerations"]
    assert release["values"]["gfd"] == {"enabled": False}


def test_device_plugin_can_be_left_to_microk8s_or_gpu_operator(deploy) -> None:
    d = deploy({"gpuDevicePlugin": "false"})
    assert HELM not in d.types
    assert "rapids-mlflow:platform:GpuDevicePlugin" not in d.types


def test_runtime_class_reaches_plugin_and_job_template(deploy) -> None:
    d = deploy({"gpuRuntimeClass": "nvidia", "gpuFeatureDiscovery": "true"})
    values = d.one(HELM).inputs["values"]
    assert values["runtimeClassName"] == "nvidia" and values["gfd"] == {"enabled": True}
    assert d.exports["kube_job_template"]["spec"]["template"]["spec"]["runtimeClassName"] == "nvidia"


def test_training_role_grants_only_job_lifecycle_and_pod_logs(default_deployment: Deployment) -> None:
    role = default_deployment.one("kubernetes:rbac.authorization.k8s.io/v1:Role").inputs
    granted = {
        (g, r, v) for rule in role["rules"] for g in rule["apiGroups"] for r in rule["resources"] for v in rule["verbs"]
    }
    assert ("batch", "jobs", "create") in granted and ("batch", "jobs", "delete") in granted
    assert ("batch", "jobs", "watch") in granted
    assert ("", "pods/log", "get") in granted
    assert not [g for g in granted if g[1] in {"secrets", "pods/exec", "*"} or g[2] == "*"]
    binding = default_deployment.one("kubernetes:rbac.authorization.k8s.io/v1:RoleBinding").inputs
    assert binding["subjects"] == [{"kind": "ServiceAccount", "name": "rapids-mlflow-training", "namespace": "mlflow"}]
    assert binding["roleRef"]["kind"] == "Role"


def test_namespace_enforces_restricted_pod_security(default_deployment: Deployment) -> None:
    labels = default_deployment.one("kubernetes:core/v1:Namespace").inputs["metadata"]["labels"]
    assert labels["pod-security.kubernetes.io/enforce"] == "restricted"
