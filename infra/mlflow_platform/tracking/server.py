"""The MLflow tracking server: a Deployment of the pinned `-full` image behind a Service.

Choices and why:
- the `-full` image variant, because the plain image has no PostgreSQL driver or S3 client;
- the backend URI reaches the server only as the `MLFLOW_BACKEND_STORE_URI` environment variable from the
  database Secret (never on the command line, where it would show in the pod spec and in `ps`);
- `mlflow db upgrade` runs once per rollout in a Job the Deployment waits for (`schema_migration`), because
  the server refuses to start on an out-of-date schema, and one init container per replica would race;
- a `checksum/secrets` annotation on the pod template (a digest of the Secrets the pods read), because
  Kubernetes does not restart pods when a Secret read as env changes: a rotated key now rolls the pods;
- artifact proxying (`--serve-artifacts --artifacts-destination s3://...`), so clients and training Jobs
  never need S3 credentials to log models: only the server and data readers hold them;
- `--allowed-hosts` lists every name the server is reached by (the Service's DNS names with the port, the
  external host, localhost for `kubectl port-forward`), because since MLflow 3.5 any other Host header gets 403
  and passing the flag replaces MLflow's defaults;
- `--cors-allowed-origins` lists only the origin users open the UI at (`externalUrl`, or the load balancer's
  address), because browsers send `Origin` even on same-origin POSTs and MLflow refuses a non-localhost one;
- server-side job execution is off (`MLFLOW_SERVER_ENABLE_JOB_EXECUTION=false`): it starts seven extra
  consumer processes that tracking does not need;
- non-root, read-only root filesystem, a size-limited `/tmp`, requests and limits sized for the server's
  real footprint (400-700 MiB a worker idle; OOM kills are the usual failure of under-sized servers).
"""

from __future__ import annotations

from urllib.parse import urlparse

import pulumi
import pulumi_kubernetes as k8s

from mlflow_platform.aws.artifact_store import ArtifactStore
from mlflow_platform.aws.service_accounts import s3_service_account
from mlflow_platform.core import pod_security
from mlflow_platform.core.config import StackConfig
from mlflow_platform.core.labels import labels, selector_labels
from mlflow_platform.core.naming import TYPE_PREFIX, Names
from mlflow_platform.core.pod_security import MLFLOW_UID
from mlflow_platform.tracking.cluster_secrets import AUTH_CONFIG_FILE, ClusterSecrets
from mlflow_platform.tracking.disruptions import spread_constraints
from mlflow_platform.tracking.schema_migration import migration_selector, schema_migration_job
from mlflow_platform.tracking.serving_user import serving_user_job
from mlflow_platform.tracking.training_user import training_user_job

COMPONENT = "tracking-server"
CHECKSUM_ANNOTATION = "checksum/secrets"
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


def origin_of(url: str) -> str:
    """A URL's origin as a browser sends it in `Origin`: scheme://host, plus the port only when not the default."""
    parsed = urlparse(url)
    default_port = 443 if parsed.scheme == "https" else 80
    port = f":{parsed.port}" if parsed.port is not None and parsed.port != default_port else ""
    return f"{parsed.scheme}://{parsed.hostname}{port}"


def cors_origins(cfg: StackConfig, user_uris: list[str]) -> list[str]:
    """The origins whose UI may POST to the API: only the addresses users open the UI at.

    MLflow answers 403 to a state-changing `/api` or `/ajax-api` request whose `Origin` is neither localhost nor
    listed, and browsers send `Origin` on same-origin POSTs too: without this the UI breaks behind any external
    name. Nothing else is listed, so a page on another site still cannot use a signed-in user's browser.
    """
    return list(dict.fromkeys(origin_of(uri) for uri in user_uris))


def server_args(
    cfg: StackConfig, names: Names, artifact_root: str, extra_hosts: list[str], user_uris: list[str] | None = None
) -> list[str]:
    """The `mlflow server` command line (secrets come from the environment, not from here).

    `user_uris` are the external addresses users open the UI at (`externalUrl`, or the load balancer's).
    """
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
    origins = cors_origins(cfg, user_uris or [])
    if origins:
        args.append(f"--cors-allowed-origins={','.join(origins)}")
    if cfg.basic_auth:
        args.append("--app-name=basic-auth")
    return args


def user_uris(cfg: StackConfig, lb_hosts: list[str]) -> list[str]:
    """Where users reach the server from outside the cluster: `externalUrl`, else the load balancer's names."""
    if cfg.external_url:
        return [cfg.external_url]
    if cfg.tls_certificate_arn:
        return [f"https://{host}" for host in lb_hosts]
    return [f"http://{host}:{cfg.tracking_port}" for host in lb_hosts]


# AWS load balancer annotations (in-tree service controller and the AWS Load Balancer Controller alike).
_LB = "service.beta.kubernetes.io/aws-load-balancer-"


def load_balancer_annotations(scheme: str, certificate_arn: str | None) -> dict[str, str]:
    """An NLB of `scheme`; with a certificate it terminates TLS on 443 and forwards TCP (the tracking server's
    `tlsCertificateArn`, the scoring endpoint's `servingTlsCertificateArn`).

    The scheme is stated for both controllers: the AWS Load Balancer Controller reads `aws-load-balancer-scheme`
    (its default is internal: aws-load-balancer-controller `pkg/service/model_build_load_balancer.go`,
    `buildLoadBalancerScheme`), the in-tree controller only `aws-load-balancer-internal` (cloud-provider-aws
    `pkg/providers/v1/aws.go`, `ServiceAnnotationLoadBalancerInternal`; its default is internet-facing).
    `pulumi.com/skipAwait`: Pulumi does not wait for the load balancer's address, so a load balancer that never
    provisions (no controller, no subnets tagged for it) cannot hold up the tracking server (see `user_uris`).
    """
    annotations = {f"{_LB}type": "nlb", f"{_LB}scheme": scheme, "pulumi.com/skipAwait": "true"}
    if scheme == "internal":
        annotations[f"{_LB}internal"] = "true"
    if certificate_arn:
        annotations |= {
            f"{_LB}ssl-cert": certificate_arn,
            f"{_LB}ssl-ports": "https",
            f"{_LB}backend-protocol": "tcp",
        }
    return annotations


def load_balancer_service(
    name: str,
    cfg: StackConfig,
    names: Names,
    namespace: pulumi.Input[str],
    object_labels: dict[str, str],
    opts: pulumi.ResourceOptions,
) -> k8s.core.v1.Service:
    """The Service that faces the outside: one port (443 with TLS, else the server port), source ranges.

    `externalTrafficPolicy: Local` keeps the client's address, so the tracking server's NetworkPolicy can
    admit exactly `loadBalancerSourceRanges`, and the NLB's own filter is not the only one.
    """
    port = (
        k8s.core.v1.ServicePortArgs(name="https", port=443, target_port="http")
        if cfg.tls_certificate_arn
        else k8s.core.v1.ServicePortArgs(name="http", port=cfg.tracking_port, target_port="http")
    )
    return k8s.core.v1.Service(
        name,
        metadata=k8s.meta.v1.ObjectMetaArgs(
            name=f"{names.tracking}-public",
            namespace=namespace,
            labels=object_labels,
            annotations=load_balancer_annotations(cfg.load_balancer_scheme, cfg.tls_certificate_arn),
        ),
        spec=k8s.core.v1.ServiceSpecArgs(
            type="LoadBalancer",
            selector=selector_labels(cfg.name_prefix, COMPONENT),
            ports=[port],
            external_traffic_policy="Local",
            load_balancer_source_ranges=list(cfg.load_balancer_source_ranges or []) or None,
        ),
        opts=opts,
    )


NODE_PORT_RANGE = range(30000, 32768)  # the API server's default --service-node-port-range


def node_port(cfg: StackConfig) -> int | None:
    """With NodePort, the port of `externalUrl` when it is a node port: the UI's origin (listed for CORS) is then
    exactly where the Service listens. Otherwise the API server picks one (a proxy in front is the user's)."""
    if cfg.service_type != "NodePort" or not cfg.external_url:
        return None
    port = urlparse(cfg.external_url).port
    return port if port in NODE_PORT_RANGE else None


def load_balancer_hosts(status: dict | None) -> list[str]:
    """The addresses a LoadBalancer Service's status names (a hostname on AWS, an IP elsewhere); none until then."""
    ingress = ((status or {}).get("load_balancer") or (status or {}).get("loadBalancer") or {}).get("ingress") or []
    return [entry.get("hostname") or entry.get("ip") for entry in ingress if entry.get("hostname") or entry.get("ip")]


class TrackingServer(pulumi.ComponentResource):
    """MLflow server Deployment, its ServiceAccount and its Service; exposes the URIs users and pods use."""

    in_cluster_uri: str
    user_uri: pulumi.Output[str]
    port_forward_command: str
    selector: dict[str, str]
    migration_selector: dict[str, str]
    serving_user: k8s.batch.v1.Job | None

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
        self.migration_selector = migration_selector(cfg)
        migration = schema_migration_job(
            f"{name}-db-upgrade", cfg, names, namespace, secrets.checksum(names.db_secret), child
        )

        account = s3_service_account(
            f"{name}-service-account",
            cfg,
            names.tracking_service_account,
            namespace,
            object_labels,
            child,
            automount_token=False,
        )

        # In-cluster clients and port-forward use this Service (plain HTTP inside the cluster); a LoadBalancer
        # gets a Service of its own, so that only its one port (HTTPS with a certificate) faces the outside.
        k8s.core.v1.Service(
            f"{name}-service",
            metadata=k8s.meta.v1.ObjectMetaArgs(name=names.tracking, namespace=namespace, labels=object_labels),
            spec=k8s.core.v1.ServiceSpecArgs(
                type="NodePort" if cfg.service_type == "NodePort" else "ClusterIP",
                selector=self.selector,
                ports=[
                    k8s.core.v1.ServicePortArgs(
                        name="http", port=cfg.tracking_port, target_port="http", node_port=node_port(cfg)
                    )
                ],
            ),
            opts=child,
        )
        lb_hosts: pulumi.Output[list[str]] = pulumi.Output.from_input([])
        if cfg.service_type == "LoadBalancer":
            public = load_balancer_service(f"{name}-public-service", cfg, names, namespace, object_labels, child)
            lb_hosts = public.status.apply(lambda s: load_balancer_hosts(service_status(s)))

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
        args = pulumi.Output.all(store.artifact_root, lb_hosts).apply(
            lambda a: server_args(cfg, names, a[0], a[1], user_uris(cfg, a[1]))
        )
        deployment = k8s.apps.v1.Deployment(
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
                    metadata=k8s.meta.v1.ObjectMetaArgs(
                        labels=object_labels,
                        annotations={
                            CHECKSUM_ANNOTATION: secrets.checksum(names.db_secret, names.s3_secret, names.auth_secret)
                        },
                    ),
                    spec=k8s.core.v1.PodSpecArgs(
                        service_account_name=names.tracking_service_account,
                        automount_service_account_token=False,
                        security_context=pod_security.pod_context(MLFLOW_UID),
                        topology_spread_constraints=spread_constraints(cfg, self.selector),
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
            opts=pulumi.ResourceOptions(parent=self, depends_on=[account, migration]),
        )

        self.in_cluster_uri = f"http://{names.service_fqdn(names.tracking)}:{cfg.tracking_port}"
        if cfg.basic_auth:
            training_user_job(
                f"{name}-training-user",
                cfg,
                names,
                namespace,
                self.in_cluster_uri,
                secrets.checksum(names.auth_secret, names.training_auth_secret),
                pulumi.ResourceOptions(parent=self, depends_on=[deployment]),
            )
        # The scoring endpoint's read-only user, on the server it reads from (the endpoint's pods wait for it).
        self.serving_user = None
        if cfg.basic_auth and cfg.serving:
            self.serving_user = serving_user_job(
                f"{name}-serving-user",
                cfg,
                names,
                namespace,
                self.in_cluster_uri,
                secrets.checksum(names.auth_secret, names.serving_auth_secret),
                pulumi.ResourceOptions(parent=self, depends_on=[deployment]),
            )
        self.port_forward_command = (
            f"kubectl -n {cfg.namespace} port-forward svc/{names.tracking} {cfg.tracking_port}:{cfg.tracking_port}"
        )
        local = f"http://localhost:{cfg.tracking_port}"
        self.user_uri = lb_hosts.apply(lambda h: (user_uris(cfg, h) or [local])[0])
        self.register_outputs({"in_cluster_uri": self.in_cluster_uri, "user_uri": self.user_uri})


def service_status(value: object) -> dict | None:
    """Service status arrives as a dict under mocks and as a typed object from the engine."""
    if value is None or isinstance(value, dict):
        return value
    lb = getattr(value, "load_balancer", None)
    ingress = getattr(lb, "ingress", None) or []
    return {"load_balancer": {"ingress": [{"hostname": i.hostname, "ip": i.ip} for i in ingress]}}
