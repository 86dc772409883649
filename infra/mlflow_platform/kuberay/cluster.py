"""A RayCluster (KubeRay `ray.io/v1`) on which Ray Tune runs trials in parallel, one GPU worker pod per trial slot.

Shape: a CPU head (no trials: `num-cpus: 0`; it holds the GCS, the dashboard, the Ray Client server the driver Job
connects to, and KubeRay's autoscaler sidecar) and one GPU worker group that scales from 0 to `rayMaxWorkers` with
Ray's in-tree autoscaler, so GPU nodes are held only while trials wait for them. The workers run the training image
(`<training repository>:<rayImageTag>`), so Ray, Python and the trainer's code match the driver Job's.

Security, as strict as the other workloads (see `pod_security`, `policies.check_pod_spec`):
- Ray's token authentication (Ray >= 2.52): `authOptions.mode: token` with `secretName`, a Secret of ours whose
  `auth_token` is a generated password (pulumi_random, a secret output). KubeRay v1.7.0 then injects `RAY_AUTH_MODE`
  and `RAY_AUTH_TOKEN` (by `secretKeyRef`, never by value) into the Ray containers, the autoscaler and the
  `wait-gcs-ready` init container (ray-operator/controllers/ray/common/pod.go, `SetContainerTokenAuthEnvVars`).
  The driver Job reads the same Secret (`build_ray_driver_template`).
- Every Ray port is pinned in `rayStartParams`, so the NetworkPolicy can name them: GCS 6379, dashboard 8265,
  Ray Client 10001, raylet, object manager, runtime-env agent, dashboard agent, metrics and the worker port range.
  Only pods of the platform namespace reach them (`RayNetworkPolicy`); Ray's two extra metrics ports stay closed.
  `tests/infra/kuberay/test_ray_head.py` starts the declared head for real in a pod-like sandbox and compares what it
  listens on with the policy.
- Pods: non-root (uid 1001, the image's user), RuntimeDefault seccomp, no privilege escalation, all capabilities
  dropped, read-only root filesystem. Ray writes its session directory, logs and spilled objects under /tmp/ray and
  its object store to /dev/shm, so both are size-limited emptyDirs, and HOME points into /tmp for caches (the head
  runs that way in the sandbox test: read-only mounts, tmpfs on /tmp and /dev/shm).
- Probes: KubeRay injects readiness and liveness probes itself (for Ray >= 2.53 an HTTP GET of /api/healthz on the
  dashboard agent's port 52365, from the kubelet) unless a template sets its own; we leave them to KubeRay, which
  keeps them in step with Ray's health endpoints. That endpoint exists only with the dashboard's dependencies:
  the image must install `ray[default,tune]`, not `ray[tune]` alone (seen here: with `ray[tune]` the agent runs
  in minimal mode without its HTTP server, so the probe would fail and the pods would never be ready).
- S3 and MLflow credentials reach the Ray pods as they reach the training Jobs: the access key by `secretKeyRef`, or
  the `<prefix>-ray` ServiceAccount's IRSA annotation / Pod Identity association (`service_accounts`,
  `aws_identity.service_accounts`); with basic-auth the non-admin training user's credentials.
- The head's ServiceAccount is our `<prefix>-ray` (so IRSA reaches the Tune driver loop, which Ray Client runs on
  the head and which stores the experiment state in S3); KubeRay binds its autoscaler Role (pods get/list/watch/
  patch, rayclusters get/patch) to it, which is why only the head mounts an API token. Workers mount none.

What only a real cluster shows: the autoscaler actually adding GPU pods, their image pull time, and the GPU nodes'
scheduling (taint, device plugin, node group scale-up); see the README.
"""

from __future__ import annotations

from decimal import Decimal
from typing import Any

import pulumi
import pulumi_kubernetes as k8s
import pulumi_random as random

from mlflow_platform.aws.service_accounts import s3_service_account
from mlflow_platform.core.config import StackConfig
from mlflow_platform.core.gpu_taint import gpu_tolerations, parse_taint
from mlflow_platform.core.labels import labels, selector_labels
from mlflow_platform.core.naming import TYPE_PREFIX, Names
from mlflow_platform.core.quantities import parse_bytes
from mlflow_platform.training.job_template import TRAINING_UID, build_job_template

#: Ray in the training image (trainer/Dockerfile, requirements.txt); KubeRay needs it for auth and probes.
RAY_VERSION = "2.60.0"
API_VERSION = "ray.io/v1"
KIND = "RayCluster"
COMPONENT = "ray-cluster"
WORKER_GROUP = "gpu-workers"
HEAD_CONTAINER = "ray-head"
WORKER_CONTAINER = "ray-worker"
AUTH_TOKEN_KEY = "auth_token"  # the key KubeRay reads (utils.RAY_AUTH_TOKEN_SECRET_KEY)

# Every port a Ray node listens on, pinned so a NetworkPolicy can name them (`ray start --help`, Ray 2.60).
GCS_PORT = 6379
DASHBOARD_PORT = 8265
CLIENT_PORT = 10001
NODE_PORTS = {
    "node-manager-port": 6380,
    "object-manager-port": 6381,
    "runtime-env-agent-port": 6382,
    "dashboard-agent-grpc-port": 6383,
    "dashboard-agent-listen-port": 52365,
    "metrics-export-port": 8080,
}
HEAD_PORTS = {"port": GCS_PORT, "dashboard-port": DASHBOARD_PORT, "ray-client-server-port": CLIENT_PORT}
# Prometheus endpoints Ray opens on every address that no Ray process of another pod connects to; the NetworkPolicy
# leaves them closed (ray.autoscaler._private.constants.AUTOSCALER_METRIC_PORT, ray.dashboard.consts.
# DASHBOARD_METRIC_PORT). Node metrics stay reachable on metrics-export-port.
CLOSED_METRICS_PORTS = {44217: "autoscaler metrics", 44227: "dashboard metrics"}
# One port per worker process of a node; 10002-19999 is Ray's default range, kept so parallel trials never run out.
MIN_WORKER_PORT, MAX_WORKER_PORT = 10002, 19999
# Scale an idle GPU worker down after this long (the autoscaler's default is 60 s; trials come in waves).
IDLE_TIMEOUT_SECONDS = 300
AUTOSCALER_RESOURCES = {"cpu": "500m", "memory": "512Mi"}  # KubeRay's own default for the sidecar
TMP_MOUNT = "/tmp"
SHM_MOUNT = "/dev/shm"


def ray_address(names: Names) -> str:
    """The Ray Client address the driver Job connects to (`RAY_ADDRESS`)."""
    return f"ray://{names.service_fqdn(names.ray_head_service)}:{CLIENT_PORT}"


def ray_selector(cfg: StackConfig) -> dict[str, str]:
    """Labels every Ray pod (head and workers) carries, for the NetworkPolicy."""
    return selector_labels(cfg.name_prefix, COMPONENT, name="ray")


def _secret_env(var: str, secret: str, key: str | None = None) -> dict[str, Any]:
    return {"name": var, "valueFrom": {"secretKeyRef": {"name": secret, "key": key or var}}}


def _ray_env(cfg: StackConfig, names: Names, tracking_uri: str) -> list[dict[str, Any]]:
    """What a trial needs, as the job template gives it to a training Job (credentials by reference only)."""
    env: list[dict[str, Any]] = [
        {"name": "PYTHONUNBUFFERED", "value": "1"},
        {"name": "HOME", "value": f"{TMP_MOUNT}/home"},  # the root filesystem is read-only
        {"name": "RAY_USAGE_STATS_ENABLED", "value": "0"},  # no reports to Ray's usage server
        {"name": "AWS_DEFAULT_REGION", "value": cfg.aws_region},
        {"name": "MLFLOW_TRACKING_URI", "value": tracking_uri},
    ]
    if cfg.uses_access_key:
        env += [
            _secret_env("AWS_ACCESS_KEY_ID", names.s3_secret),
            _secret_env("AWS_SECRET_ACCESS_KEY", names.s3_secret),
        ]
    if cfg.basic_auth:
        env += [
            _secret_env("MLFLOW_TRACKING_USERNAME", names.training_auth_secret),
            _secret_env("MLFLOW_TRACKING_PASSWORD", names.training_auth_secret),
        ]
    return env


def _container_security() -> dict[str, Any]:
    return {
        "allowPrivilegeEscalation": False,
        "privileged": False,
        "readOnlyRootFilesystem": True,
        "runAsNonRoot": True,
        "capabilities": {"drop": ["ALL"]},
    }


def _pod_security() -> dict[str, Any]:
    return {
        "runAsNonRoot": True,
        "runAsUser": TRAINING_UID,
        "runAsGroup": TRAINING_UID,
        "fsGroup": TRAINING_UID,
        "seccompProfile": {"type": "RuntimeDefault"},
    }


def _scratch_volumes(memory: str) -> list[dict[str, Any]]:
    """/tmp (Ray's session dir, logs, spilled objects) and /dev/shm (the object store), each at most half the
    container's memory: the memory-backed one counts against the memory limit, and Ray's object store takes 30%."""
    half = str(int(parse_bytes(memory) / Decimal(2)))
    return [
        {"name": "ray-tmp", "emptyDir": {"sizeLimit": memory}},
        {"name": "dshm", "emptyDir": {"medium": "Memory", "sizeLimit": half}},
    ]


_MOUNTS = [{"name": "ray-tmp", "mountPath": TMP_MOUNT}, {"name": "dshm", "mountPath": SHM_MOUNT}]


def _start_params(ports: dict[str, int], **extra: str) -> dict[str, str]:
    params = {key: str(port) for key, port in {**ports, **NODE_PORTS}.items()}
    params.update({"min-worker-port": str(MIN_WORKER_PORT), "max-worker-port": str(MAX_WORKER_PORT)})
    params.update(extra)
    return dict(sorted(params.items()))


def ray_cluster_manifest(
    cfg: StackConfig,
    names: Names,
    image: pulumi.Input[str],
    tracking_uri: str,
    pod_annotations: dict[str, pulumi.Input[str]] | None = None,
) -> dict[str, Any]:
    """The RayCluster as a Kubernetes manifest (what the CRD's schema and the pod checks validate).

    `image` may be an Output (the ECR repository's URL is known only after it exists): it is the only value that
    is, so a first preview shows everything else of the cluster and the policies check it.
    """
    pod_labels = labels(cfg.name_prefix, COMPONENT, name="ray", version=RAY_VERSION)
    # `pod_annotations` carries the digest of the Secrets the pods read (`checksum/secrets`); with
    # `upgradeStrategy: Recreate` (KubeRay >= 1.5, in the v1.7.0 CRD) KubeRay recreates the pods when a template
    # changes, so a rotated S3 key or MLflow password reaches the long-lived head. KubeRay's default (None) never
    # replaces a running pod.
    pod_metadata: dict[str, Any] = {"labels": pod_labels}
    if pod_annotations:
        pod_metadata["annotations"] = dict(pod_annotations)
    env = _ray_env(cfg, names, tracking_uri)

    head_pod: dict[str, Any] = {
        "serviceAccountName": names.ray_service_account,
        # KubeRay's autoscaler sidecar in this pod calls the API (pods, rayclusters): it needs the token.
        "automountServiceAccountToken": True,
        "securityContext": _pod_security(),
        "containers": [
            {
                "name": HEAD_CONTAINER,
                "image": image,
                "env": env,
                "resources": {
                    "requests": {"cpu": cfg.ray_head_cpu, "memory": cfg.ray_head_memory},
                    "limits": {"memory": cfg.ray_head_memory},
                },
                # KubeRay builds the head Service from these, by KubeRay's port names (utils.*PortName).
                "ports": [
                    {"name": "gcs-server", "containerPort": GCS_PORT},
                    {"name": "dashboard", "containerPort": DASHBOARD_PORT},
                    {"name": "client", "containerPort": CLIENT_PORT},
                    {"name": "metrics", "containerPort": NODE_PORTS["metrics-export-port"]},
                ],
                "securityContext": _container_security(),
                "volumeMounts": list(_MOUNTS),
            }
        ],
        "volumes": _scratch_volumes(cfg.ray_head_memory),
    }

    worker_limits: dict[str, Any] = {"memory": cfg.ray_worker_memory}
    if cfg.ray_worker_gpus:
        worker_limits["nvidia.com/gpu"] = cfg.ray_worker_gpus
    worker_pod: dict[str, Any] = {
        "serviceAccountName": names.ray_service_account,
        "automountServiceAccountToken": False,  # trials never call the Kubernetes API
        "securityContext": _pod_security(),
        "containers": [
            {
                "name": WORKER_CONTAINER,
                "image": image,
                "env": env,
                "resources": {
                    "requests": {"cpu": cfg.ray_worker_cpu, "memory": cfg.ray_worker_memory},
                    "limits": worker_limits,
                },
                "securityContext": _container_security(),
                "volumeMounts": list(_MOUNTS),
            }
        ],
        "volumes": _scratch_volumes(cfg.ray_worker_memory),
    }
    if cfg.ray_worker_gpus and (tolerations := gpu_tolerations(parse_taint(cfg.gpu_taint))):
        worker_pod["tolerations"] = tolerations
    if cfg.ray_worker_gpus and cfg.gpu_runtime_class:
        worker_pod["runtimeClassName"] = cfg.gpu_runtime_class

    return {
        "apiVersion": API_VERSION,
        "kind": KIND,
        "metadata": {
            "name": names.ray_cluster,
            "namespace": cfg.namespace,
            "labels": labels(cfg.name_prefix, COMPONENT, name="ray"),
        },
        "spec": {
            "rayVersion": RAY_VERSION,
            "upgradeStrategy": {"type": "Recreate"},
            "enableInTreeAutoscaling": True,
            "authOptions": {"mode": "token", "secretName": names.ray_auth_secret},
            "autoscalerOptions": {
                "upscalingMode": "Default",
                "idleTimeoutSeconds": IDLE_TIMEOUT_SECONDS,
                "resources": {"requests": dict(AUTOSCALER_RESOURCES), "limits": dict(AUTOSCALER_RESOURCES)},
                "securityContext": _container_security(),
                "env": [{"name": "HOME", "value": f"{TMP_MOUNT}/home"}],
                "volumeMounts": [{"name": "ray-tmp", "mountPath": TMP_MOUNT}],
            },
            "headGroupSpec": {
                # The head runs no trials: GPU-less, and its CPUs belong to the GCS and the Ray Client server.
                "rayStartParams": _start_params(HEAD_PORTS, **{"num-cpus": "0"}),
                "template": {"metadata": dict(pod_metadata), "spec": head_pod},
            },
            "workerGroupSpecs": [
                {
                    "groupName": WORKER_GROUP,
                    "replicas": 0,
                    "minReplicas": 0,
                    "maxReplicas": cfg.ray_max_workers,
                    "rayStartParams": _start_params({}),
                    "template": {"metadata": dict(pod_metadata), "spec": worker_pod},
                }
            ],
        },
    }


def build_ray_driver_template(cfg: StackConfig, names: Names) -> dict[str, Any]:
    """The Job template for `mlflow run ... -P executor=ray`: the same Job as `build_job_template`, but with no GPU
    (trials run on the Ray workers; the driver only suggests and records them) and with the Ray address and token.
    """
    driver_cfg = cfg.model_copy(update={"training_gpus": 0, "gpu_runtime_class": None})
    template = build_job_template(driver_cfg, names)
    container = template["spec"]["template"]["spec"]["containers"][0]
    container["env"] += [
        {"name": "RAY_ADDRESS", "value": ray_address(names)},
        {"name": "RAY_AUTH_MODE", "value": "token"},
        _secret_env("RAY_AUTH_TOKEN", names.ray_auth_secret, AUTH_TOKEN_KEY),
    ]
    return template


class RayCluster(pulumi.ComponentResource):
    """The token Secret, the Ray ServiceAccount, the RayCluster and the NetworkPolicy around its pods."""

    address: str
    image: pulumi.Output[str]

    def __init__(
        self,
        name: str,
        cfg: StackConfig,
        names: Names,
        namespace: pulumi.Input[str],
        repository_uri: pulumi.Input[str],
        tracking_uri: str,
        crd_source: pulumi.Resource,
        opts: pulumi.ResourceOptions | None = None,
        pod_annotations: dict[str, pulumi.Input[str]] | None = None,
    ) -> None:
        """`crd_source` installs the RayCluster CRD (the operator's release): the object is created after it, as a
        child does not wait for what its parent component depends on."""
        super().__init__(f"{TYPE_PREFIX}:RayCluster", name, None, opts)
        child = pulumi.ResourceOptions(parent=self)
        object_labels = labels(cfg.name_prefix, COMPONENT, name="ray")

        token = random.RandomPassword(f"{name}-auth-token", length=48, special=False, opts=child)
        secret = k8s.core.v1.Secret(
            f"{name}-auth",
            metadata=k8s.meta.v1.ObjectMetaArgs(name=names.ray_auth_secret, namespace=namespace, labels=object_labels),
            type="Opaque",
            string_data={AUTH_TOKEN_KEY: pulumi.Output.secret(token.result)},
            opts=child,
        )
        account = s3_service_account(
            f"{name}-service-account", cfg, names.ray_service_account, namespace, object_labels, child
        )
        image = pulumi.Output.concat(repository_uri, ":", cfg.ray_image_tag or "")
        manifest = ray_cluster_manifest(cfg, names, image, tracking_uri, pod_annotations)
        k8s.apiextensions.CustomResource(
            f"{name}-cluster",
            api_version=API_VERSION,
            kind=KIND,
            metadata=k8s.meta.v1.ObjectMetaArgs(
                name=names.ray_cluster, namespace=namespace, labels=manifest["metadata"]["labels"]
            ),
            spec=manifest["spec"],
            opts=pulumi.ResourceOptions(parent=self, depends_on=[secret, account, crd_source]),
        )
        RayNetworkPolicy(f"{name}-network", cfg, names, namespace, opts=child)
        self.address = ray_address(names)
        self.image = image
        self.register_outputs({"address": self.address, "image": self.image})


class RayNetworkPolicy(pulumi.ComponentResource):
    """Ray's ports open only to pods of the platform namespace (the driver Job and the Ray pods themselves).

    Egress stays open, as for training Jobs: trials reach S3 at addresses a NetworkPolicy cannot name. Kubelet
    probes come from the node, which CNIs admit. Enforced only by a CNI that implements NetworkPolicy.
    """

    def __init__(
        self,
        name: str,
        cfg: StackConfig,
        names: Names,
        namespace: pulumi.Input[str],
        opts: pulumi.ResourceOptions | None = None,
    ) -> None:
        super().__init__(f"{TYPE_PREFIX}:RayNetworkPolicy", name, None, opts)
        single = sorted({*HEAD_PORTS.values(), *NODE_PORTS.values()})
        ports = [k8s.networking.v1.NetworkPolicyPortArgs(protocol="TCP", port=p) for p in single]
        ports.append(
            k8s.networking.v1.NetworkPolicyPortArgs(protocol="TCP", port=MIN_WORKER_PORT, end_port=MAX_WORKER_PORT)
        )
        k8s.networking.v1.NetworkPolicy(
            f"{name}-ingress",
            metadata=k8s.meta.v1.ObjectMetaArgs(
                name=names.ray_network_policy,
                namespace=namespace,
                labels=labels(cfg.name_prefix, COMPONENT, name="ray"),
            ),
            spec=k8s.networking.v1.NetworkPolicySpecArgs(
                pod_selector=k8s.meta.v1.LabelSelectorArgs(match_labels=ray_selector(cfg)),
                policy_types=["Ingress"],
                ingress=[
                    k8s.networking.v1.NetworkPolicyIngressRuleArgs(
                        from_=[k8s.networking.v1.NetworkPolicyPeerArgs(pod_selector=k8s.meta.v1.LabelSelectorArgs())],
                        ports=ports,
                    )
                ],
            ),
            opts=pulumi.ResourceOptions(parent=self),
        )
        self.register_outputs({})
