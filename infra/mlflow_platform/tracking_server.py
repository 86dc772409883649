"""The MLflow tracking server: a Deployment of the pinned `-full` image behind a Service.

Choices and why:
- the `-full` image variant, because the plain image has no PostgreSQL driver or S3 client;
- the backend URI reaches the server only as the `MLFLOW_BACKEND_STORE_URI` environment variable from the
  database Secret (never on the command line, where it would show in the pod spec and in `ps`);
- `mlflow db upgrade` runs in an init container, because the server refuses to start on an out-of-date
  schema (and creates the schema itself on an empty database, which `db upgrade` also handles);
- artifact proxying (`--serve-artifacts --artifacts-destination s3://...`), so clients and training Jobs
  never need S3 credentials to log models: only the server and data readers hold them;
- `--allowed-hosts` lists every name the server is reached by (the Service's DNS names with the port, the
  external host, localhost for `kubectl port-forward`), because since MLflow 3.5 any other Host header gets 403
  and passing the flag replaces MLflow's defaults;
- server-side job execution is off (`MLFLOW_SERVER_ENABLE_JOB_EXECUTION=false`): it starts seven extra
  consumer processes that tracking does not need;
- non-root, read-only root filesystem, a size-limited `/tmp`, requests and limits sized for the server's
  real footprint (400-700 MiB a worker idle; OOM kills are the usual failure of under-sized servers).
"""

from __future__ import annotations

from urllib.parse import urlparse

import pulumi
import pulumi_kubernetes as k8s

from . import pod_security
from .artifact_store import ArtifactStore
from .cluster_secrets import AUTH_CONFIG_FILE, ClusterSecrets
from .config import StackConfig
from .disruptions import spread_constraints
from .labels import labels, selector_labels
from .naming import TYPE_PREFIX, Names
from .service_accounts import s3_service_account

COMPONENT = "tracking-server"
MLFLOW_UID = 1000
AUTH_CONFIG_DIR = "/etc/mlflow-auth"
PROMETHEUS_DIR = "/tmp/prometheus"
# MLflow's own defaults for private addresses, re-added for NodePort access because --allowed-hosts
# replaces the defaults.
_PRIVATE_HOST_PATTERNS = ["10.*", "192.168.*", *[f"172.{i}.*" for i in range(16, 32)]]


def allowed_hosts(cfg: StackConfig, names: Names, extra: list[str] | None = None) -> list[str]:
    """Every Host header the server must accept: in-cluster DNS names, port-forward, the external host."""
    service, port = names.tracking, cfg.tracking_port
    hosts: list[str] = []
    for host in (service, f"{service}.{cfg.namespace}", f"{service}.{cfg.namespace}.svc", names.service_fqdn(service)):
        hosts += [host, f"{host}:{port}"]
    hosts += ["localhost", "localhost:*", "127.0.0.1", "127.0.0.1:*"]
    if cfg.external_url:
        parsed = urlparse(cfg.external_url)
        assert parsed.hostname is not None  # validated in config
        hosts.append(parsed.netloc)
        if parsed.port is None:
            hosts.append(f"{parsed.hostname}:{443 if parsed.scheme == 'https' else 80}")
    if cfg.service_type == "NodePort":
        hosts += _PRIVATE_HOST_PATTERNS
    for host in extra or []:
        hosts += [host, f"{host}:{port}"]
    return list(dict.fromkeys(hosts))


def server_args(cfg: StackConfig, names: Names, artifact_root: str, extra_hosts: list[str]) -> list[str]:
    """The `mlflow server` command line (secrets come from the environment, not from here)."""
    args = [
        "mlflow",
        "server",
        "--host=0.0.0.0",
        f"--port={cfg.tracking_port}",
        f"--workers={cfg.tracking_workers}",
        # Prometheus metrics at /metrics (metrics.py); the multiprocess files live in the writable /tmp volume.
        f"--expose-prometheus={PROMETHEUS_DIR}",
        "--serve-artifacts",
        f"--artifacts-destination={artifact_root}",
        f"--allowed-hosts={','.join(allowed_hosts(cfg, names, extra_hosts))}",
    ]
    if cfg.basic_auth:
        args.append("--app-name=basic-auth")
    return args


def _load_balancer_hosts(status: dict | None) -> list[str]:
    ingress = ((status or {}).get("load_balancer") or (status or {}).get("loadBalancer") or {}).get("ingress") or []
    return [entry.get("hostname") or entry.get("ip") for entry in ingress if entry.get("hostname") or entry.get("ip")]


class TrackingServer(pulumi.ComponentResource):
    """MLflow server Deployment, its ServiceAccount and its Service; exposes the URIs users and pods use."""

    in_cluster_uri: str
    user_uri: pulumi.Output[str]
    port_forward_command: str
    selector: dict[str, str]

    def __init__(
        self,
        name: str,
        cfg: StackConfig,
        names: Names,
        namespace: pulumi.Input[str],
        store: ArtifactStore,
        secrets: ClusterSecrets,
        opts: pulumi.ResourceOptions | None = None,
    ) -> None:
        super().__init__(f"{TYPE_PREFIX}:TrackingServer", name, None, opts)
        child = pulumi.ResourceOptions(parent=self)
        version = cfg.tracking_image.rsplit(":", 1)[-1]
        object_labels = labels(cfg.name_prefix, COMPONENT, version=version)
        self.selector = selector_labels(cfg.name_prefix, COMPONENT)

        account = s3_service_account(
            f"{name}-service-account",
            cfg,
            names.tracking_service_account,
            namespace,
            object_labels,
            child,
            automount_token=False,
        )

        service = k8s.core.v1.Service(
            f"{name}-service",
            metadata=k8s.meta.v1.ObjectMetaArgs(name=names.tracking, namespace=namespace, labels=object_labels),
            spec=k8s.core.v1.ServiceSpecArgs(
                type=cfg.service_type,
                selector=self.selector,
                ports=[k8s.core.v1.ServicePortArgs(name="http", port=cfg.tracking_port, target_port="http")],
            ),
            opts=child,
        )
        lb_hosts: pulumi.Output[list[str]] = (
            service.status.apply(lambda s: _load_balancer_hosts(_as_dict(s)))
            if cfg.service_type == "LoadBalancer"
            else pulumi.Output.from_input([])
        )

        def secret_env(var: str, secret: str, key: str | None = None) -> k8s.core.v1.EnvVarArgs:
            return k8s.core.v1.EnvVarArgs(
                name=var,
                value_from=k8s.core.v1.EnvVarSourceArgs(
                    secret_key_ref=k8s.core.v1.SecretKeySelectorArgs(name=secret, key=key or var)
                ),
            )

        backend_env = secret_env("MLFLOW_BACKEND_STORE_URI", names.db_secret)
        env = [
            backend_env,
            k8s.core.v1.EnvVarArgs(name="AWS_DEFAULT_REGION", value=cfg.aws_region),
            k8s.core.v1.EnvVarArgs(name="MLFLOW_SERVER_ENABLE_JOB_EXECUTION", value="false"),
            k8s.core.v1.EnvVarArgs(name="HOME", value="/tmp"),
            k8s.core.v1.EnvVarArgs(name="PYTHONUNBUFFERED", value="1"),
        ]
        if cfg.uses_access_key:
            env += [
                secret_env("AWS_ACCESS_KEY_ID", names.s3_secret),
                secret_env("AWS_SECRET_ACCESS_KEY", names.s3_secret),
            ]
        mounts = [k8s.core.v1.VolumeMountArgs(name="tmp", mount_path="/tmp")]
        volumes = [pod_security.scratch_volume("tmp", "1Gi")]
        if cfg.basic_auth:
            env += [
                secret_env("MLFLOW_AUTH_ADMIN_USERNAME", names.auth_secret),
                secret_env("MLFLOW_AUTH_ADMIN_PASSWORD", names.auth_secret),
                secret_env("MLFLOW_FLASK_SERVER_SECRET_KEY", names.auth_secret),
                k8s.core.v1.EnvVarArgs(name="MLFLOW_AUTH_CONFIG_PATH", value=f"{AUTH_CONFIG_DIR}/{AUTH_CONFIG_FILE}"),
            ]
            mounts.append(k8s.core.v1.VolumeMountArgs(name="auth-config", mount_path=AUTH_CONFIG_DIR, read_only=True))
            volumes.append(
                k8s.core.v1.VolumeArgs(
                    name="auth-config",
                    secret=k8s.core.v1.SecretVolumeSourceArgs(
                        secret_name=names.auth_secret,
                        items=[k8s.core.v1.KeyToPathArgs(key=AUTH_CONFIG_FILE, path=AUTH_CONFIG_FILE)],
                        default_mode=0o440,
                    ),
                )
            )

        health = k8s.core.v1.HTTPGetActionArgs(path="/health", port="http")
        args = pulumi.Output.all(store.artifact_root, lb_hosts).apply(lambda a: server_args(cfg, names, a[0], a[1]))
        k8s.apps.v1.Deployment(
            f"{name}-deployment",
            metadata=k8s.meta.v1.ObjectMetaArgs(name=names.tracking, namespace=namespace, labels=object_labels),
            spec=k8s.apps.v1.DeploymentSpecArgs(
                replicas=cfg.tracking_replicas,
                selector=k8s.meta.v1.LabelSelectorArgs(match_labels=self.selector),
                strategy=k8s.apps.v1.DeploymentStrategyArgs(
                    type="RollingUpdate",
                    rolling_update=k8s.apps.v1.RollingUpdateDeploymentArgs(max_surge=1, max_unavailable=0),
                ),
                template=k8s.core.v1.PodTemplateSpecArgs(
                    metadata=k8s.meta.v1.ObjectMetaArgs(labels=object_labels),
                    spec=k8s.core.v1.PodSpecArgs(
                        service_account_name=names.tracking_service_account,
                        automount_service_account_token=False,
                        security_context=pod_security.pod_context(MLFLOW_UID),
                        topology_spread_constraints=spread_constraints(cfg, self.selector),
                        init_containers=[
                            k8s.core.v1.ContainerArgs(
                                name="db-upgrade",
                                image=cfg.tracking_image,
                                # $(VAR) is expanded by the kubelet from the container's env, so the URI
                                # stays out of the pod spec.
                                command=["mlflow", "db", "upgrade", "$(MLFLOW_BACKEND_STORE_URI)"],
                                env=[backend_env, k8s.core.v1.EnvVarArgs(name="HOME", value="/tmp")],
                                resources=k8s.core.v1.ResourceRequirementsArgs(
                                    requests={"cpu": "100m", "memory": "512Mi"}, limits={"cpu": "1", "memory": "1Gi"}
                                ),
                                security_context=pod_security.container_context(read_only_root=True),
                                volume_mounts=mounts[:1],
                            )
                        ],
                        containers=[
                            k8s.core.v1.ContainerArgs(
                                name="mlflow",
                                image=cfg.tracking_image,
                                command=args,
                                ports=[k8s.core.v1.ContainerPortArgs(name="http", container_port=cfg.tracking_port)],
                                env=env,
                                resources=k8s.core.v1.ResourceRequirementsArgs(
                                    requests={"cpu": "250m", "memory": "1Gi"}, limits={"cpu": "2", "memory": "2Gi"}
                                ),
                                security_context=pod_security.container_context(read_only_root=True),
                                startup_probe=k8s.core.v1.ProbeArgs(
                                    http_get=health, period_seconds=5, timeout_seconds=3, failure_threshold=36
                                ),
                                readiness_probe=k8s.core.v1.ProbeArgs(
                                    http_get=health, period_seconds=10, timeout_seconds=3, failure_threshold=3
                                ),
                                liveness_probe=k8s.core.v1.ProbeArgs(
                                    http_get=health, period_seconds=20, timeout_seconds=5, failure_threshold=3
                                ),
                                volume_mounts=mounts,
                            )
                        ],
                        volumes=volumes,
                    ),
                ),
            ),
            opts=pulumi.ResourceOptions(parent=self, depends_on=[account]),
        )

        self.in_cluster_uri = f"http://{names.service_fqdn(names.tracking)}:{cfg.tracking_port}"
        self.port_forward_command = (
            f"kubectl -n {cfg.namespace} port-forward svc/{names.tracking} {cfg.tracking_port}:{cfg.tracking_port}"
        )
        local = f"http://localhost:{cfg.tracking_port}"
        if cfg.external_url:
            self.user_uri = pulumi.Output.from_input(cfg.external_url)
        else:
            self.user_uri = lb_hosts.apply(lambda h: f"http://{h[0]}:{cfg.tracking_port}" if h else local)
        self.register_outputs({"in_cluster_uri": self.in_cluster_uri, "user_uri": self.user_uri})


def _as_dict(value: object) -> dict | None:
    """Service status arrives as a dict under mocks and as a typed object from the engine."""
    if value is None or isinstance(value, dict):
        return value
    lb = getattr(value, "load_balancer", None)
    ingress = getattr(lb, "ingress", None) or []
    return {"load_balancer": {"ingress": [{"hostname": i.hostname, "ip": i.ip} for i in ingress]}}
