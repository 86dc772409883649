"""The online endpoint: MLflow's scoring server for `models:/<servingModel>@<servingAlias>`, and its alias follower.

What is declared (only with `serving: true`) and why:
- a Deployment running `mlflow models serve -m models:/<model>@<alias> --env-manager local` from the training
  image (`<training repository>:<servingImageTag>`), so the model loads with the libraries it was trained with, on
  a GPU node when `servingGpus` > 0 (the GPU limit, the GPU taint's toleration and `gpuRuntimeClass`);
- the model reaches the pods through the tracking server's artifact proxy: `MLFLOW_TRACKING_URI` is the in-cluster
  tracking Service and the registered version's source is an `mlflow-artifacts:/` URI, so the pods hold no S3
  key and mount no ServiceAccount token; with basic auth they sign in as the endpoint's own read-only `serving`
  user (`tracking.serving_user`: READ on the served model and on the experiments holding its versions);
- readiness on `/ping`: MLflow's scoring server loads the model before it listens, and `/ping` answers 200 only
  with a loaded model, so a pod is ready only once its model is; a rolling update (`maxUnavailable: 0`) gated on
  that readiness replaces pods without a failed request, and a version that fails to load never takes traffic;
- a ClusterIP Service (`serving_url`), a NetworkPolicy (in: pods of the namespace on the serving port; out: the
  tracking server and the cluster DNS only); with more than one replica a PodDisruptionBudget and topology
  spread, as the tracking server's (`tracking.disruptions`);
- with `servingExposure: loadBalancer`, a second Service `<serving>-public` built as the tracking server's
  (`tracking.server.load_balancer_annotations`: an NLB of `loadBalancerScheme`, HTTPS on 443 with
  `servingTlsCertificateArn`, `externalTrafficPolicy: Local` so client addresses survive), limited to
  `servingSourceRanges` twice: by the load balancer and by the NetworkPolicy, which then also admits those ranges
  (MLflow's scoring server has no authentication: who may reach it is all the protection it has);
- the follower: a CronJob (`servingFollowSchedule`) running `python -m airline_hpo.serving.follow` in the same
  image, with its own ServiceAccount and a Role of `follower_rules` (get and patch on this one Deployment). It
  patches the pod template annotations `serving.rapids-mlflow-stack/model-version` and `restartedAt`, which
  `pulumi up` is told to leave alone (`ignore_changes`), so a later `pulumi up` does not roll the pods back.
  With basic auth an init container (the MLflow image, the admin's pair) first brings the serving user's READ
  grants up to date, so a version from a new experiment is readable before the roll starts its pods.
"""

from __future__ import annotations

from typing import Any

import pulumi
import pulumi_kubernetes as k8s

from mlflow_platform.core import pod_security
from mlflow_platform.core.config import StackConfig
from mlflow_platform.core.cron_jobs import cron_job
from mlflow_platform.core.gpu_taint import gpu_tolerations, parse_taint
from mlflow_platform.core.job_pods import SCRATCH, home_env, job_container, job_pod_spec, scratch_mount
from mlflow_platform.core.labels import labels, selector_labels
from mlflow_platform.core.naming import TYPE_PREFIX, Names
from mlflow_platform.core.pod_env import plain_env, secret_env
from mlflow_platform.core.workload_identity import api_server_egress, bound_service_account
from mlflow_platform.serving.follower import follower_rules
from mlflow_platform.tracking.disruptions import one_at_a_time, spread_constraints
from mlflow_platform.tracking.server import load_balancer_annotations, load_balancer_hosts, service_status
from mlflow_platform.tracking.serving_user import serving_grants_container
from mlflow_platform.training.job_template import TRAINING_UID

COMPONENT = "model-serving"
FOLLOWER_COMPONENT = "serving-follower"
CONTAINER = "scoring-server"
SERVING_PORT = 8080
DNS_PORT = 53
#: The API server's ports after the `kubernetes` Service's DNAT: 443 on EKS, 6443 on kubeadm and MicroK8s.
#: The pod template annotations the follower sets (airline_hpo.serving.follow); Pulumi must leave them alone.
VERSION_ANNOTATION = "serving.rapids-mlflow-stack/model-version"
RESTARTED_AT_ANNOTATION = "kubectl.kubernetes.io/restartedAt"
FOLLOWER_IGNORED = [
    f'spec.template.metadata.annotations["{VERSION_ANNOTATION}"]',
    f'spec.template.metadata.annotations["{RESTARTED_AT_ANNOTATION}"]',
]
#: Model download and load, through the artifact proxy, before `/ping` answers: up to 10 minutes.
STARTUP_PERIOD_SECONDS, STARTUP_FAILURES = 5, 120
#: The downloaded model lives under /tmp (MLflow downloads to a temporary directory).
SCRATCH_SIZE = "4Gi"


def serving_selector(cfg: StackConfig) -> dict[str, str]:
    return selector_labels(cfg.name_prefix, COMPONENT, name="mlflow-serving")


def follower_selector(cfg: StackConfig) -> dict[str, str]:
    return selector_labels(cfg.name_prefix, FOLLOWER_COMPONENT, name="mlflow-serving")


def model_uri(cfg: StackConfig) -> str:
    return f"models:/{cfg.serving_model}@{cfg.serving_alias}"


def serve_command(cfg: StackConfig) -> list[str]:
    """MLflow's scoring server in the image's own environment (no new virtualenv at start)."""
    return [
        "mlflow",
        "models",
        "serve",
        "-m",
        model_uri(cfg),
        "--env-manager",
        "local",
        "--host",
        "0.0.0.0",
        "--port",
        str(SERVING_PORT),
    ]


def follow_command(cfg: StackConfig, names: Names) -> list[str]:
    """The follower's command line (trainer/airline_hpo/serving/follow.py)."""
    return [
        "python",
        "-m",
        "airline_hpo.serving.follow",
        "--namespace",
        cfg.namespace,
        "--deployment",
        names.serving,
        "--model-name",
        cfg.serving_model,
        "--alias",
        cfg.serving_alias,
    ]


def serving_url(cfg: StackConfig, names: Names) -> str:
    return f"http://{names.service_fqdn(names.serving)}:{SERVING_PORT}"


def public_service_name(names: Names) -> str:
    return f"{names.serving}-public"


def external_url(cfg: StackConfig, names: Names, hosts: list[str]) -> str:
    """Where clients outside the cluster call the endpoint; until the load balancer has an address, how to see it."""
    if not hosts:
        return f"pending: kubectl -n {cfg.namespace} get service {public_service_name(names)}"
    if cfg.serving_tls_certificate_arn:
        return f"https://{hosts[0]}"
    return f"http://{hosts[0]}:{SERVING_PORT}"


def public_service(
    name: str,
    cfg: StackConfig,
    names: Names,
    namespace: pulumi.Input[str],
    object_labels: dict[str, str],
    opts: pulumi.ResourceOptions,
) -> k8s.core.v1.Service:
    """The load balancer's Service: one port (443 with a certificate, else the serving port), the source ranges."""
    port = (
        k8s.core.v1.ServicePortArgs(name="https", port=443, target_port="http")
        if cfg.serving_tls_certificate_arn
        else k8s.core.v1.ServicePortArgs(name="http", port=SERVING_PORT, target_port="http")
    )
    return k8s.core.v1.Service(
        name,
        metadata=k8s.meta.v1.ObjectMetaArgs(
            name=public_service_name(names),
            namespace=namespace,
            labels=object_labels,
            annotations=load_balancer_annotations(cfg.load_balancer_scheme, cfg.serving_tls_certificate_arn),
        ),
        spec=k8s.core.v1.ServiceSpecArgs(
            type="LoadBalancer",
            selector=serving_selector(cfg),
            ports=[port],
            external_traffic_policy="Local",
            load_balancer_source_ranges=list(cfg.serving_source_ranges or []),
        ),
        opts=opts,
    )


def _ingress(cfg: StackConfig) -> list[k8s.networking.v1.NetworkPolicyIngressRuleArgs]:
    """Pods of the namespace; with a load balancer, also its source ranges (client addresses are kept)."""
    _np = k8s.networking.v1
    peers = [_np.NetworkPolicyPeerArgs(pod_selector=k8s.meta.v1.LabelSelectorArgs())]
    if cfg.serves_outside:
        peers += [_np.NetworkPolicyPeerArgs(ip_block=_np.IPBlockArgs(cidr=c)) for c in cfg.serving_source_ranges or ()]
    return [
        _np.NetworkPolicyIngressRuleArgs(
            from_=peers, ports=[_np.NetworkPolicyPortArgs(protocol="TCP", port=SERVING_PORT)]
        )
    ]


def mlflow_env(cfg: StackConfig, names: Names, tracking_uri: str) -> list[k8s.core.v1.EnvVarArgs]:
    """The registry and the artifact proxy, signed in as the read-only serving user; never an S3 key."""
    env = [
        home_env(),
        plain_env("PYTHONUNBUFFERED", "1"),
        plain_env("MLFLOW_TRACKING_URI", tracking_uri),
    ]
    if cfg.basic_auth:
        env += [
            secret_env("MLFLOW_TRACKING_USERNAME", names.serving_auth_secret),
            secret_env("MLFLOW_TRACKING_PASSWORD", names.serving_auth_secret),
        ]
    return env


def _dns_peer() -> k8s.networking.v1.NetworkPolicyPeerArgs:
    return k8s.networking.v1.NetworkPolicyPeerArgs(
        namespace_selector=k8s.meta.v1.LabelSelectorArgs(match_labels={"kubernetes.io/metadata.name": "kube-system"})
    )


def _dns_ports() -> list[k8s.networking.v1.NetworkPolicyPortArgs]:
    return [k8s.networking.v1.NetworkPolicyPortArgs(protocol=p, port=DNS_PORT) for p in ("UDP", "TCP")]


def _tracking_egress(
    cfg: StackConfig, tracking_selector: dict[str, str]
) -> k8s.networking.v1.NetworkPolicyEgressRuleArgs:
    return k8s.networking.v1.NetworkPolicyEgressRuleArgs(
        to=[
            k8s.networking.v1.NetworkPolicyPeerArgs(
                pod_selector=k8s.meta.v1.LabelSelectorArgs(match_labels=tracking_selector)
            )
        ],
        ports=[k8s.networking.v1.NetworkPolicyPortArgs(protocol="TCP", port=cfg.tracking_port)],
    )


def _gpu_pod_fields(cfg: StackConfig) -> dict[str, Any]:
    if not cfg.serving_gpus:
        return {}
    fields: dict[str, Any] = {}
    if tolerations := gpu_tolerations(parse_taint(cfg.gpu_taint)):
        fields["tolerations"] = [k8s.core.v1.TolerationArgs(**t) for t in tolerations]
    if cfg.gpu_runtime_class:
        fields["runtime_class_name"] = cfg.gpu_runtime_class
    return fields


class ServingEndpoint(pulumi.ComponentResource):
    """Deployment, Service, NetworkPolicies, PodDisruptionBudget and the alias follower of the scoring server."""

    url: str

    def __init__(
        self,
        name: str,
        cfg: StackConfig,
        names: Names,
        namespace: pulumi.Input[str],
        repository_uri: pulumi.Input[str],
        tracking_uri: str,
        tracking_selector: dict[str, str],
        opts: pulumi.ResourceOptions | None = None,
        pod_annotations: dict[str, pulumi.Input[str]] | None = None,
        serving_user: pulumi.Resource | None = None,
    ) -> None:
        """`pod_annotations` carries the digest of the Secrets the pods read (`checksum/secrets`); `serving_user`
        is the Job that creates the pods' MLflow user (basic auth), which the pods start after."""
        super().__init__(f"{TYPE_PREFIX}:ServingEndpoint", name, None, opts)
        child = pulumi.ResourceOptions(parent=self)
        image = pulumi.Output.concat(repository_uri, ":", cfg.serving_image_tag or "")
        object_labels = labels(cfg.name_prefix, COMPONENT, name="mlflow-serving", version=cfg.serving_image_tag)
        selector = serving_selector(cfg)
        meta = k8s.meta.v1.ObjectMetaArgs(name=names.serving, namespace=namespace, labels=object_labels)

        k8s.core.v1.ServiceAccount(
            f"{name}-service-account", metadata=meta, automount_service_account_token=False, opts=child
        )
        k8s.core.v1.Service(
            f"{name}-service",
            metadata=meta,
            spec=k8s.core.v1.ServiceSpecArgs(
                type="ClusterIP",
                selector=selector,
                ports=[k8s.core.v1.ServicePortArgs(name="http", port=SERVING_PORT, target_port="http")],
            ),
            opts=child,
        )

        limits: dict[str, Any] = {"cpu": cfg.serving_cpu_limit, "memory": cfg.serving_memory_limit}
        if cfg.serving_gpus:
            limits["nvidia.com/gpu"] = str(cfg.serving_gpus)
        ping = k8s.core.v1.HTTPGetActionArgs(path="/ping", port="http")
        container = k8s.core.v1.ContainerArgs(
            name=CONTAINER,
            image=image,
            command=serve_command(cfg),
            ports=[k8s.core.v1.ContainerPortArgs(name="http", container_port=SERVING_PORT)],
            env=mlflow_env(cfg, names, tracking_uri),
            resources=k8s.core.v1.ResourceRequirementsArgs(
                requests={"cpu": cfg.serving_cpu, "memory": cfg.serving_memory}, limits=limits
            ),
            security_context=pod_security.container_context(read_only_root=True),
            startup_probe=k8s.core.v1.ProbeArgs(
                http_get=ping,
                period_seconds=STARTUP_PERIOD_SECONDS,
                timeout_seconds=3,
                failure_threshold=STARTUP_FAILURES,
            ),
            readiness_probe=k8s.core.v1.ProbeArgs(
                http_get=ping, period_seconds=5, timeout_seconds=3, failure_threshold=2
            ),
            liveness_probe=k8s.core.v1.ProbeArgs(
                http_get=ping, period_seconds=20, timeout_seconds=5, failure_threshold=3
            ),
            volume_mounts=[scratch_mount()],
        )
        deployment = k8s.apps.v1.Deployment(
            f"{name}-deployment",
            metadata=meta,
            spec=k8s.apps.v1.DeploymentSpecArgs(
                replicas=cfg.serving_replicas,
                selector=k8s.meta.v1.LabelSelectorArgs(match_labels=selector),
                strategy=k8s.apps.v1.DeploymentStrategyArgs(
                    type="RollingUpdate",
                    rolling_update=k8s.apps.v1.RollingUpdateDeploymentArgs(max_surge=1, max_unavailable=0),
                ),
                template=k8s.core.v1.PodTemplateSpecArgs(
                    metadata=k8s.meta.v1.ObjectMetaArgs(labels=object_labels, annotations=dict(pod_annotations or {})),
                    spec=k8s.core.v1.PodSpecArgs(
                        service_account_name=names.serving,
                        automount_service_account_token=False,
                        security_context=pod_security.pod_context(TRAINING_UID),
                        topology_spread_constraints=spread_constraints(cfg, selector, cfg.serving_replicas),
                        containers=[container],
                        volumes=[pod_security.scratch_volume(SCRATCH, SCRATCH_SIZE)],
                        **_gpu_pod_fields(cfg),
                    ),
                ),
            ),
            opts=pulumi.ResourceOptions(
                parent=self, ignore_changes=FOLLOWER_IGNORED, depends_on=[serving_user] if serving_user else None
            ),
        )
        if cfg.serving_replicas > 1:
            k8s.policy.v1.PodDisruptionBudget(
                f"{name}-disruption-budget",
                metadata=meta,
                spec=one_at_a_time(selector),
                opts=child,
            )
        _np = k8s.networking.v1
        _np.NetworkPolicy(
            f"{name}-network-policy",
            metadata=k8s.meta.v1.ObjectMetaArgs(
                name=f"{names.serving}-traffic", namespace=namespace, labels=object_labels
            ),
            spec=_np.NetworkPolicySpecArgs(
                pod_selector=k8s.meta.v1.LabelSelectorArgs(match_labels=selector),
                policy_types=["Ingress", "Egress"],
                ingress=_ingress(cfg),
                egress=[
                    _tracking_egress(cfg, tracking_selector),
                    _np.NetworkPolicyEgressRuleArgs(to=[_dns_peer()], ports=_dns_ports()),
                ],
            ),
            opts=child,
        )
        self._follower(name, cfg, names, namespace, image, tracking_uri, tracking_selector, deployment)
        self.url = serving_url(cfg, names)
        self.external_url: pulumi.Output[str] | None = None
        if cfg.serves_outside:
            public = public_service(f"{name}-public-service", cfg, names, namespace, object_labels, child)
            self.external_url = public.status.apply(
                lambda s: external_url(cfg, names, load_balancer_hosts(service_status(s)))
            )
        self.register_outputs({"url": self.url, "external_url": self.external_url})

    def _follower(
        self,
        name: str,
        cfg: StackConfig,
        names: Names,
        namespace: pulumi.Input[str],
        image: pulumi.Input[str],
        tracking_uri: str,
        tracking_selector: dict[str, str],
        deployment: k8s.apps.v1.Deployment,
    ) -> None:
        """The CronJob that rolls the Deployment when the alias moves, and exactly the access it needs."""
        child = pulumi.ResourceOptions(parent=self)
        object_labels = labels(
            cfg.name_prefix, FOLLOWER_COMPONENT, name="mlflow-serving", version=cfg.serving_image_tag
        )
        meta = k8s.meta.v1.ObjectMetaArgs(name=names.serving_follower, namespace=namespace, labels=object_labels)
        rules = [
            k8s.rbac.v1.PolicyRuleArgs(
                api_groups=r["apiGroups"], resources=r["resources"], resource_names=r["resourceNames"], verbs=r["verbs"]
            )
            for r in follower_rules(names.serving)
        ]
        binding = bound_service_account(f"{name}-follower", meta, names.serving_follower, namespace, rules, self)
        _np = k8s.networking.v1
        _np.NetworkPolicy(
            f"{name}-follower-network-policy",
            metadata=meta,
            spec=_np.NetworkPolicySpecArgs(
                pod_selector=k8s.meta.v1.LabelSelectorArgs(match_labels=follower_selector(cfg)),
                policy_types=["Ingress", "Egress"],
                ingress=[],
                egress=[
                    _tracking_egress(cfg, tracking_selector),
                    _np.NetworkPolicyEgressRuleArgs(to=[_dns_peer()], ports=_dns_ports()),
                    api_server_egress(),
                ],
            ),
            opts=child,
        )
        container = job_container(
            "alias-follower",
            image,  # type: ignore[arg-type]
            follow_command(cfg, names),
            mlflow_env(cfg, names, tracking_uri),
            requests={"cpu": "50m", "memory": "256Mi"},
            limits={"cpu": "500m", "memory": "512Mi"},
        )
        cron_job(
            f"{name}-follower-cronjob",
            name=names.serving_follower,
            namespace=namespace,
            object_labels=object_labels,
            schedule=cfg.serving_follow_schedule,
            pod_spec=job_pod_spec(
                TRAINING_UID,
                [container],
                scratch_size="256Mi",
                init_containers=[serving_grants_container(cfg, names, tracking_uri)] if cfg.basic_auth else None,
                service_account=names.serving_follower,
                api_token=True,
            ),
            # A run that outlives the next one's start only delays it (concurrencyPolicy Forbid).
            active_deadline_seconds=100,
            opts=pulumi.ResourceOptions(parent=self, depends_on=[binding, deployment]),
        )
