"""Scale-out with Ray: the KubeRay operator release and the RayCluster, checked against KubeRay's own files.

The RayCluster is validated against the CRD that KubeRay v1.7.0 (the release of the pinned chart) installs
(tests/infra/fixtures/kuberay-v1.7.0, see its README), strictly: a field the CRD does not list is an error. Its pod
templates are validated against the Kubernetes 1.34 schema, and the CrossGuard policies run over them (with the
autoscaler sidecar KubeRay adds). What KubeRay itself does with the object (the names it derives, the env it
injects for token auth, the checks of `ValidateRayClusterSpec`) is read from its source at the same tag and cited
where a test relies on it.
"""

from __future__ import annotations

import re
from typing import Any

import kubernetes_validate
import pytest
import yaml
from crd_schema import crd_document, problems, validator
from mlflow_platform.core.config import ConfigError, parse
from mlflow_platform.core.gpu_taint import parse_taint
from mlflow_platform.core.naming import Names
from mlflow_platform.kuberay.cluster import RAY_VERSION
from mlflow_platform.policies import check_pod_spec
from mock_harness import KUBERNETES_VERSION, REPO, Deployment, manifests, run_policies
from moto.iam.access_control import IAMPolicy, PermissionResult
from toleration_matching import tolerated_by

FIXTURES = REPO / "tests" / "infra" / "fixtures" / "kuberay-v1.7.0"
CRD_PATH = FIXTURES / "ray.io_rayclusters.yaml"
CHART_VALUES = yaml.safe_load((FIXTURES / "kuberay-operator-values.yaml").read_text())
RAY = {"ray": "true", "rayImageTag": "0a1b2c3"}
VARIANTS = {
    "default": RAY,
    "auth-irsa-4-gpus": {
        **RAY,
        "basicAuth": "true",
        "s3Identity": "irsa",
        "irsaRoleArn": "arn:aws:iam::123456789012:role/mlflow",
        "rayWorkerGpus": "4",
        "rayMaxWorkers": "2",
        "gpuRuntimeClass": "nvidia",
    },
    "cpu-workers-microk8s": {
        **RAY,
        "rayWorkerGpus": "0",
        "trainingRepositoryUri": "localhost:32000/airline-hpo",
        "clusterKind": "other",
        "postgresStorageClass": "microk8s-hostpath",
        "rayWorkerCpu": "1500m",
        "rayWorkerMemory": "3Gi",
    },
}
POLICY = "kubernetes:networking.k8s.io/v1:NetworkPolicy"


def _cluster(d: Deployment) -> dict[str, Any]:
    (cluster,) = [m for m in manifests(d) if m["kind"] == "RayCluster"]
    return cluster


def _pods(cluster: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """Pod templates by role: the head and each worker group."""
    spec = cluster["spec"]
    pods = {"head": spec["headGroupSpec"]["template"]}
    pods.update({g["groupName"]: g["template"] for g in spec["workerGroupSpecs"]})
    return pods


@pytest.fixture(scope="module")
def ray_deployment() -> Deployment:
    from mock_harness import run_program

    return run_program(RAY)


# --- the RayCluster against KubeRay's CRD and the pod templates against Kubernetes -----------------------------


@pytest.mark.parametrize("variant", VARIANTS)
def test_the_ray_cluster_is_valid_for_kuberays_crd(deploy, variant: str) -> None:
    cluster = _cluster(deploy(VARIANTS[variant]))
    assert cluster["apiVersion"] == "ray.io/v1"
    assert problems(validator(CRD_PATH, "v1"), cluster) == []


def test_the_crd_check_is_strict_about_fields_and_types(ray_deployment: Deployment) -> None:
    """A misspelt field would be pruned by the API server and never reach KubeRay: the check refuses it."""
    cluster = _cluster(ray_deployment)
    group = cluster["spec"]["workerGroupSpecs"][0]
    broken = {**cluster, "spec": {**cluster["spec"], "workerGroupSpecs": [{**group, "maxReplica": 4}]}}
    assert problems(validator(CRD_PATH, "v1"), broken) == [
        "spec.workerGroupSpecs.0: Additional properties are not allowed ('maxReplica' was unexpected)"
    ]
    broken = {**cluster, "spec": {**cluster["spec"], "authOptions": {"mode": "tokens"}}}
    assert problems(validator(CRD_PATH, "v1"), broken) == [
        "spec.authOptions.mode: 'tokens' is not one of ['disabled', 'token']"
    ]


def test_no_cel_rule_of_the_crd_applies_to_a_field_we_set(ray_deployment: Deployment) -> None:
    """CEL rules (`x-kubernetes-validations`) are not evaluated by jsonschema; the CRD has three, on two fields."""
    crd = crd_document(CRD_PATH)
    (v1,) = [v for v in crd["spec"]["versions"] if v["name"] == "v1"]
    spec_schema = v1["schema"]["openAPIV3Schema"]["properties"]["spec"]["properties"]
    ruled = {name for name, sub in spec_schema.items() if "x-kubernetes-validations" in sub}
    ruled |= {
        f"{name}.{inner}"
        for name, sub in spec_schema.items()
        for inner, s in (sub.get("properties") or {}).items()
        if "x-kubernetes-validations" in s
    }
    assert ruled == {"managedBy", "gcsFaultToleranceOptions.backend"}
    assert not {"managedBy", "gcsFaultToleranceOptions"} & set(_cluster(ray_deployment)["spec"])


@pytest.mark.parametrize("variant", VARIANTS)
def test_every_pod_template_is_valid_kubernetes_and_meets_the_namespace_pod_security(deploy, variant: str) -> None:
    for role, template in _pods(_cluster(deploy(VARIANTS[variant]))).items():
        pod_template = {"apiVersion": "v1", "kind": "PodTemplate", "metadata": {"name": role}, "template": template}
        try:
            kubernetes_validate.validate(pod_template, KUBERNETES_VERSION, strict=True)
        except kubernetes_validate.ValidationError as e:
            pytest.fail(f"{role}: {'.'.join(str(p) for p in e.path)}: {e.message}")
        assert check_pod_spec(template["spec"]) == [], role
        for container in template["spec"]["containers"]:
            assert container["securityContext"]["readOnlyRootFilesystem"] is True
            mounts = {m["mountPath"] for m in container["volumeMounts"]}
            assert {"/tmp", "/dev/shm"} <= mounts, f"{role}: Ray writes /tmp/ray and its object store in /dev/shm"


@pytest.mark.parametrize("variant", VARIANTS)
def test_every_policy_passes_on_the_ray_resources(deploy, variant: str) -> None:
    assert run_policies(deploy(VARIANTS[variant])) == []


def _mutated_cluster(d: Deployment, mutate) -> Deployment:
    import json

    from mock_harness import Recorded

    resources = []
    for r in d.resources:
        if r.type == "kubernetes:ray.io/v1:RayCluster":
            wire = json.loads(json.dumps(r.wire_inputs))
            mutate(wire["spec"])
            r = Recorded(**{**r.__dict__, "wire_inputs": wire})
        resources.append(r)
    return Deployment(resources=resources)


def _worker_container(spec: dict) -> dict:
    return spec["workerGroupSpecs"][0]["template"]["spec"]["containers"][0]


@pytest.mark.parametrize(
    ("policy", "mutate"),
    [
        ("k8s-pods-hardened", lambda s: _worker_container(s)["securityContext"].update(allowPrivilegeEscalation=True)),
        ("k8s-pods-hardened", lambda s: s["autoscalerOptions"].pop("securityContext")),  # KubeRay's sidecar
        ("k8s-pods-hardened", lambda s: s["headGroupSpec"]["template"]["spec"].update(hostNetwork=True)),
        (
            "k8s-no-inline-secrets",
            lambda s: _worker_container(s)["env"].append({"name": "RAY_AUTH_TOKEN", "value": "x"}),
        ),
        ("images-pinned", lambda s: _worker_container(s).update(image="rayproject/ray:latest")),
        ("k8s-recommended-labels", lambda s: s["workerGroupSpecs"][0]["template"]["metadata"].update(labels={})),
    ],
    ids=["worker-escalation", "autoscaler-context", "head-host-network", "literal-token", "latest", "labels"],
)
def test_the_policies_look_inside_the_ray_cluster(ray_deployment: Deployment, policy: str, mutate) -> None:
    violated = {v.policy for v in run_policies(_mutated_cluster(ray_deployment, mutate))}
    assert policy in violated


# --- what KubeRay v1.7.0 itself requires (ray-operator/controllers/ray/utils/validation.go) -------------------


def _version(text: str) -> tuple[int, ...]:
    return tuple(int(p) for p in text.split("."))


def test_kuberays_own_checks_pass(ray_deployment: Deployment) -> None:
    """`ValidateRayClusterSpec`: token auth needs rayVersion >= 2.52.0; worker groups 0 <= min <= max; an
    autoscaled group must not be suspended; the head and every group have a container."""
    spec = _cluster(ray_deployment)["spec"]
    assert spec["authOptions"]["mode"] == "token" and _version(spec["rayVersion"]) >= (2, 52, 0)
    assert spec["headGroupSpec"]["template"]["spec"]["containers"]
    for group in spec["workerGroupSpecs"]:
        assert group["template"]["spec"]["containers"]
        assert 0 <= group["minReplicas"] <= group["replicas"] <= group["maxReplicas"]
        assert not group.get("suspend")


def test_the_gpu_group_scales_from_zero_to_the_configured_maximum(deploy) -> None:
    spec = _cluster(deploy({**RAY, "rayMaxWorkers": "7", "rayWorkerGpus": "2"}))["spec"]
    assert spec["enableInTreeAutoscaling"] is True
    (group,) = spec["workerGroupSpecs"]
    assert (group["minReplicas"], group["replicas"], group["maxReplicas"]) == (0, 0, 7)
    worker = group["template"]["spec"]["containers"][0]
    # KubeRay turns the nvidia.com/gpu limit into `ray start --num-gpus` (addWellKnownAcceleratorResources).
    assert worker["resources"]["limits"]["nvidia.com/gpu"] == 2
    head = spec["headGroupSpec"]
    assert "nvidia.com/gpu" not in head["template"]["spec"]["containers"][0]["resources"]["limits"]
    assert head["rayStartParams"]["num-cpus"] == "0"  # no trial lands on the head


def test_ray_version_matches_the_image_and_the_requirements() -> None:
    """KubeRay's probes and auth depend on rayVersion, and Ray refuses a driver of another version. The image must
    also bring the dashboard (`ray[default]`): KubeRay's probes ask its agent's HTTP server, which `ray[tune]`
    alone does not start (test_ray_head.py's docstring)."""
    pins: dict[str, set[tuple[str, str]]] = {}
    for path in ("requirements.txt", "trainer/requirements.txt", "trainer/Dockerfile"):
        text = (REPO / path).read_text()
        pins[path] = set(re.findall(r"\bray(?:\[([a-z,]+)\])?==([0-9.]+)", text))
    assert {version for _, version in pins["requirements.txt"]} == {RAY_VERSION}
    for path in ("trainer/requirements.txt", "trainer/Dockerfile"):
        for extras, version in pins[path]:
            assert version == RAY_VERSION, f"{path} pins Ray {version}, the RayCluster declares {RAY_VERSION}"
            assert "default" in extras.split(","), f"{path}: the Ray image needs ray[default,tune] for KubeRay's probes"


def test_the_image_is_the_training_image_at_the_configured_tag(deploy) -> None:
    d = deploy({**VARIANTS["cpu-workers-microk8s"], "rayImageTag": "feedbee"})
    for role, template in _pods(_cluster(d)).items():
        assert template["spec"]["containers"][0]["image"] == "localhost:32000/airline-hpo:feedbee", role
    assert d.exports["repository_uri"] == "localhost:32000/airline-hpo"


# --- GPU taint, credentials, token, network -------------------------------------------------------------------


TAINTS = ["nvidia.com/gpu=present:NoSchedule", "dedicated=gpu:NoExecute", "nvidia.com/gpu:NoSchedule"]


@pytest.mark.parametrize("taint_text", TAINTS)
def test_gpu_workers_tolerate_the_configured_taint_and_the_head_stays_off_gpu_nodes(deploy, taint_text) -> None:
    taint = parse_taint(taint_text)
    assert taint is not None
    pods = _pods(_cluster(deploy({**RAY, "gpuTaint": taint_text})))
    assert tolerated_by(pods["gpu-workers"]["spec"].get("tolerations"), vars(taint))
    assert not tolerated_by(pods["head"]["spec"].get("tolerations"), vars(taint))


def test_cpu_workers_get_neither_gpu_nor_toleration(deploy) -> None:
    worker = _pods(_cluster(deploy(VARIANTS["cpu-workers-microk8s"])))["gpu-workers"]["spec"]
    assert "tolerations" not in worker and "runtimeClassName" not in worker
    assert "nvidia.com/gpu" not in worker["containers"][0]["resources"]["limits"]


def _env(container: dict) -> dict[str, Any]:
    return {e["name"]: e.get("value", e.get("valueFrom")) for e in container["env"]}


def _secrets(d: Deployment) -> dict[str, Any]:
    return {r.inputs["metadata"]["name"]: r for r in d.of_type("kubernetes:core/v1:Secret")}


def test_ray_pods_get_s3_and_mlflow_credentials_as_the_training_job_does(deploy) -> None:
    d = deploy({**RAY, "basicAuth": "true"})
    job_env = _env(d.exports["kube_job_template"]["spec"]["template"]["spec"]["containers"][0])
    secrets = _secrets(d)
    for role, template in _pods(_cluster(d)).items():
        env = _env(template["spec"]["containers"][0])
        for name in (
            "AWS_ACCESS_KEY_ID",
            "AWS_SECRET_ACCESS_KEY",
            "MLFLOW_TRACKING_USERNAME",
            "MLFLOW_TRACKING_PASSWORD",
        ):
            assert env[name] == job_env[name], f"{role}: {name}"
            ref = env[name]["secretKeyRef"]
            assert ref["key"] in secrets[ref["name"]].inputs["stringData"]
        assert env["MLFLOW_TRACKING_URI"] == d.exports["kube_mlflow_tracking_uri"]
        assert template["spec"]["serviceAccountName"] == "rapids-mlflow-ray"
    head, worker = (_pods(_cluster(d))[k]["spec"] for k in ("head", "gpu-workers"))
    assert head["automountServiceAccountToken"] is True  # KubeRay's autoscaler sidecar calls the API
    assert worker["automountServiceAccountToken"] is False


def test_the_ray_service_account_is_trusted_by_the_irsa_role(deploy) -> None:
    provider = "arn:aws:iam::111122223333:oidc-provider/oidc.eks.eu-central-1.amazonaws.com/id/EXAMPLE"
    d = deploy({**RAY, "s3Identity": "irsa", "eksOidcProviderArn": provider})
    issuer = provider.split(":oidc-provider/")[1]
    trust = d.one("aws:iam/role:Role").inputs["assumeRolePolicy"]
    claims = {f"{issuer}:sub": "system:serviceaccount:mlflow:rapids-mlflow-ray", f"{issuer}:aud": "sts.amazonaws.com"}
    result = IAMPolicy(trust).is_action_permitted("sts:AssumeRoleWithWebIdentity", incoming_condition_values=claims)
    assert result == PermissionResult.PERMITTED
    annotations = {
        name: d.k8s_named("kubernetes:core/v1:ServiceAccount", name).inputs["metadata"]["annotations"]
        for name in ("rapids-mlflow-ray", "rapids-mlflow-training")
    }
    assert annotations["rapids-mlflow-ray"] == annotations["rapids-mlflow-training"]  # the same role, the same way
    assert annotations["rapids-mlflow-ray"]["eks.amazonaws.com/role-arn"].startswith("arn:aws:iam::111122223333:role/")
    pod_identity = deploy({**RAY, "s3Identity": "pod-identity", "eksClusterName": "ml-gpu"})
    associated = {
        a.inputs["serviceAccount"]
        for a in pod_identity.of_type("aws:eks/podIdentityAssociation:PodIdentityAssociation")
    }
    assert "rapids-mlflow-ray" in associated


def test_ray_token_auth_uses_a_generated_secret_that_the_driver_reads_too(ray_deployment: Deployment) -> None:
    d = ray_deployment
    auth = _cluster(d)["spec"]["authOptions"]
    secret = _secrets(d)[auth["secretName"]]
    # KubeRay reads the key `auth_token` (utils.RAY_AUTH_TOKEN_SECRET_KEY) and injects it as RAY_AUTH_TOKEN.
    assert set(secret.inputs["stringData"]) == {"auth_token"}
    assert len(secret.inputs["stringData"]["auth_token"]) >= 32
    assert {"data", "stringData"} <= set(secret.additional_secret_outputs)
    assert "4dabf18193072939515e22adb298388d" in str(secret.wire_inputs["stringData"])  # a secret in the state
    driver = _env(d.exports["kube_ray_driver_template"]["spec"]["template"]["spec"]["containers"][0])
    assert driver["RAY_AUTH_TOKEN"] == {"secretKeyRef": {"name": auth["secretName"], "key": "auth_token"}}
    assert driver["RAY_AUTH_MODE"] == "token"
    assert "kube_ray_driver_template" not in d.secret_exports


def test_the_ray_address_names_kuberays_head_service(ray_deployment: Deployment) -> None:
    """KubeRay names the head Service `<cluster>-head-svc` (utils.GenerateHeadServiceName) and shortens a cluster
    name over 50 characters (utils.CheckName): ours is at most 44 (a 40-character prefix + "-ray")."""
    d = ray_deployment
    cluster = _cluster(d)
    name = cluster["metadata"]["name"]
    assert len("x" * 40 + "-ray") <= 50
    fqdn = f"{name}-head-svc.{cluster['metadata']['namespace']}.svc.cluster.local"
    assert (
        d.exports["ray_address"]
        == f"ray://{fqdn}:{cluster['spec']['headGroupSpec']['rayStartParams']['ray-client-server-port']}"
    )
    driver_env = _env(d.exports["kube_ray_driver_template"]["spec"]["template"]["spec"]["containers"][0])
    assert driver_env["RAY_ADDRESS"] == d.exports["ray_address"]
    # The head Service's ports are the head container's named ports (service.go getPortsFromCluster), under
    # KubeRay's names (utils.ClientPortName, GcsServerPortName, DashboardPortName, MetricsPortName).
    head = cluster["spec"]["headGroupSpec"]
    service_ports = {p["name"]: p["containerPort"] for p in head["template"]["spec"]["containers"][0]["ports"]}
    params = head["rayStartParams"]
    assert service_ports == {
        "client": int(params["ray-client-server-port"]),
        "gcs-server": int(params["port"]),
        "dashboard": int(params["dashboard-port"]),
        "metrics": int(params["metrics-export-port"]),
    }


def test_the_driver_job_needs_no_gpu(deploy) -> None:
    d = deploy({**RAY, "gpuRuntimeClass": "nvidia"})
    template = d.exports["kube_ray_driver_template"]
    pod = template["spec"]["template"]["spec"]
    assert "nvidia.com/gpu" not in pod["containers"][0]["resources"]["limits"]
    assert "tolerations" not in pod and "runtimeClassName" not in pod
    kubernetes_validate.validate(template, KUBERNETES_VERSION, strict=True)
    assert check_pod_spec(pod) == []
    # The GPU search's own template is unchanged.
    assert (
        d.exports["kube_job_template"]["spec"]["template"]["spec"]["containers"][0]["resources"]["limits"][
            "nvidia.com/gpu"
        ]
        == 1
    )


def _selects(selector: dict, pod_labels: dict[str, str]) -> bool:
    return selector["matchLabels"].items() <= pod_labels.items()


def test_ray_ports_are_open_only_to_the_namespace_and_cover_every_port_ray_listens_on(
    ray_deployment: Deployment,
) -> None:
    d = ray_deployment
    policy = d.k8s_named(POLICY, "rapids-mlflow-ray-traffic").inputs["spec"]
    pods = _pods(_cluster(d))
    assert all(_selects(policy["podSelector"], t["metadata"]["labels"]) for t in pods.values())
    tracking = d.k8s_named("kubernetes:apps/v1:Deployment", "rapids-mlflow-tracking")
    assert not _selects(policy["podSelector"], tracking.inputs["spec"]["template"]["metadata"]["labels"])
    assert policy["policyTypes"] == ["Ingress"]
    (rule,) = policy["ingress"]
    assert rule["from"] == [{"podSelector": {}}]  # pods of the platform namespace only
    single = {p["port"] for p in rule["ports"] if "endPort" not in p}
    ranges = [(p["port"], p["endPort"]) for p in rule["ports"] if "endPort" in p]
    assert {6379, 8265, 10001} <= single
    spec = _cluster(d)["spec"]
    for group in [spec["headGroupSpec"], *spec["workerGroupSpecs"]]:
        params = group["rayStartParams"]
        for key, value in params.items():
            if key.endswith("-port") and key not in ("min-worker-port", "max-worker-port"):
                assert int(value) in single, f"{key} {value} is not open"
        assert (int(params["min-worker-port"]), int(params["max-worker-port"])) in ranges
        # Every port Ray opens is pinned: ports Ray would otherwise pick at random could not be named here.
        assert {
            "node-manager-port",
            "object-manager-port",
            "runtime-env-agent-port",
            "dashboard-agent-grpc-port",
            "dashboard-agent-listen-port",
            "metrics-export-port",
        } <= set(params)
    assert {"port", "dashboard-port", "ray-client-server-port"} <= set(spec["headGroupSpec"]["rayStartParams"])


def test_every_pinned_flag_is_a_flag_of_ray_start() -> None:
    """KubeRay passes rayStartParams as `ray start --<key>=<value>`: an unknown key stops the pod."""
    from click.testing import CliRunner
    from ray.scripts.scripts import start

    result = CliRunner().invoke(start, ["--help"])
    flags = set(re.findall(r"--([a-z][a-z-]+)", result.output))
    from mlflow_platform.core.naming import Names
    from mlflow_platform.kuberay.cluster import ray_cluster_manifest

    cfg = parse({"aws:region": "us-east-1", **RAY})
    spec = ray_cluster_manifest(cfg, Names(cfg.name_prefix, cfg.namespace), "r/x:1", "http://t")["spec"]
    for group in [spec["headGroupSpec"], *spec["workerGroupSpecs"]]:
        assert set(group["rayStartParams"]) <= flags


# --- the operator ----------------------------------------------------------------------------------------------


def _helm_merge(base: Any, override: Any) -> Any:
    if isinstance(base, dict) and isinstance(override, dict):
        return {**base, **{k: _helm_merge(base.get(k), v) for k, v in override.items()}}
    return override


def test_the_operator_watches_only_the_platform_namespace_under_the_restricted_profile(
    ray_deployment: Deployment,
) -> None:
    d = ray_deployment
    release = d.one("kubernetes:helm.sh/v3:Release", "ray-operator")
    assert (release.inputs["chart"], release.inputs["version"]) == ("kuberay-operator", "1.7.0")
    assert release.inputs["repositoryOpts"]["repo"] == "https://ray-project.github.io/kuberay-helm/"
    values = _helm_merge(CHART_VALUES, release.inputs["values"])
    assert values["singleNamespaceInstall"] is True and values["watchNamespace"] == ["mlflow"]
    assert values["rbacEnable"] and values["crNamespacedRbacEnable"]  # a Role in the namespace, no ClusterRole
    pod = {
        "securityContext": values["podSecurityContext"],
        "containers": [
            {"name": "kuberay-operator", "securityContext": values["securityContext"], "resources": values["resources"]}
        ],
    }
    assert check_pod_spec(pod) == []
    assert values["securityContext"]["readOnlyRootFilesystem"] is True
    operator_namespace = Names("rapids-mlflow", "mlflow").ray_operator_namespace
    assert operator_namespace.startswith("rapids-mlflow-mlflow-") and operator_namespace.endswith("-kuberay")
    namespace = d.k8s_named("kubernetes:core/v1:Namespace", operator_namespace)
    assert release.inputs["namespace"] == operator_namespace
    assert namespace.inputs["metadata"]["labels"]["pod-security.kubernetes.io/enforce"] == "restricted"
    assert namespace.urn in release.dependencies


def test_the_ray_cluster_waits_for_the_operator_that_installs_its_crd(ray_deployment: Deployment) -> None:
    d = ray_deployment
    """Without the CRD the API server refuses the object ("no matches for kind RayCluster")."""
    cluster = d.one("kubernetes:ray.io/v1:RayCluster")
    release = d.one("kubernetes:helm.sh/v3:Release", "ray-operator")
    assert release.urn in cluster.dependencies
    auth = d.k8s_named("kubernetes:core/v1:Secret", "rapids-mlflow-ray-auth")
    assert auth.urn in cluster.dependencies  # KubeRay would otherwise start pods whose token cannot be read


def test_without_ray_nothing_of_it_is_declared(default_deployment: Deployment) -> None:
    d = default_deployment
    assert not [r for r in d.resources if "ray" in r.type.lower() or "kuberay" in str(r.inputs)]
    assert not {k for k in d.exports if k.startswith(("ray_", "kube_ray"))}


# --- config ----------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("raw", "key", "command"),
    [
        ({"ray": "true"}, "rayImageTag", "pulumi config set rayImageTag $(git rev-parse --short=7 HEAD)"),
        ({**RAY, "rayImageTag": "latest"}, "rayImageTag", "pulumi config set rayImageTag"),
        ({**RAY, "rayImageTag": "a b"}, "rayImageTag", "pulumi config set rayImageTag"),
        ({**RAY, "rayWorkerCpu": "4Gi"}, "rayWorkerCpu", "pulumi config set rayWorkerCpu 8"),
        ({**RAY, "rayHeadMemory": "lots"}, "rayHeadMemory", "pulumi config set rayHeadMemory 8Gi"),
        ({**RAY, "rayWorkerMemory": "1Gi"}, "rayWorkerMemory", "pulumi config set rayWorkerMemory 32Gi"),
        ({**RAY, "rayMaxWorkers": "0"}, "rayMaxWorkers", "pulumi config set rayMaxWorkers 4"),
        ({**RAY, "rayWorkerGpus": "-1"}, "rayWorkerGpus", "pulumi config set rayWorkerGpus 1"),
    ],
)
def test_ray_config_mistakes_are_one_line_naming_the_fix(raw: dict, key: str, command: str) -> None:
    with pytest.raises(ConfigError) as caught:
        parse({"aws:region": "us-east-1", **raw})
    message = str(caught.value)
    assert "\n" not in message
    assert message.startswith(f"config rapids-mlflow-stack:{key}: ") and command in message


def test_on_a_first_preview_only_the_image_of_the_ray_cluster_is_undecided() -> None:
    """The ECR repository's URL is unknown before it exists; everything else of the RayCluster is known, so the
    pod-security, label and secret policies judge it at the first preview, and only `images-pinned` waits."""
    from test_first_preview import ADVISORY_ON_FIRST_PREVIEW, _advisory, _first_preview

    advisory = _advisory(_first_preview(RAY)) - ADVISORY_ON_FIRST_PREVIEW
    assert advisory == {("images-pinned", "kubernetes:ray.io/v1:RayCluster")}
