"""Network isolation: who may reach PostgreSQL and the tracking server, and where the server may connect.

PostgreSQL: only the tracking server's (and its migration Job's) pods may connect. Training Jobs, the UI's users
and anything else in the cluster talk to the tracking server's API; none of them needs the database, so a
compromised training container cannot read or alter the tracking store directly.

Tracking server: ingress on its port only from pods of the platform namespace (training Jobs, in-cluster
submitters) and, when exposed, from the load balancer's sources; egress only to the database, to the cluster DNS
(kube-system, port 53) and to HTTPS (443: S3, and STS for IRSA), so a compromised server cannot reach the rest of
the cluster or other ports outside it. `kubectl port-forward` enters the pod's own network namespace and is not
subject to these rules; kubelet probes come from the node, which CNIs admit.

Enforced by any CNI that implements NetworkPolicy (Calico, Cilium, the VPC CNI with network policies enabled on
EKS; MicroK8s' default Calico); elsewhere the objects are accepted and do nothing.
"""

from __future__ import annotations

import pulumi
import pulumi_kubernetes as k8s

from mlflow_platform.core.config import StackConfig
from mlflow_platform.core.labels import labels
from mlflow_platform.core.naming import TYPE_PREFIX, Names
from mlflow_platform.tracking.database import POSTGRES_PORT

#: Where EKS Pod Identity's agent hands a pod its role's credentials (link-local, on every node; EKS user guide,
#: "pod-id-how-it-works": 169.254.170.23 port 80, and [fd00:ec2::23] on IPv6 clusters).
POD_IDENTITY_AGENT = "169.254.170.23/32"
POD_IDENTITY_AGENT_PORT = 80


class DatabaseNetworkPolicy(pulumi.ComponentResource):
    """Ingress to the PostgreSQL pods only from the given client pods (the tracking server and its schema
    migration), only on the PostgreSQL port."""

    def __init__(
        self,
        name: str,
        cfg: StackConfig,
        names: Names,
        namespace: pulumi.Input[str],
        database_selector: dict[str, str],
        client_selectors: list[dict[str, str]],
        opts: pulumi.ResourceOptions | None = None,
    ) -> None:
        super().__init__(f"{TYPE_PREFIX}:DatabaseNetworkPolicy", name, None, opts)
        k8s.networking.v1.NetworkPolicy(
            f"{name}-postgres-ingress",
            metadata=k8s.meta.v1.ObjectMetaArgs(
                name=names.postgres_network_policy, namespace=namespace, labels=labels(cfg.name_prefix, "database")
            ),
            spec=k8s.networking.v1.NetworkPolicySpecArgs(
                pod_selector=k8s.meta.v1.LabelSelectorArgs(match_labels=database_selector),
                policy_types=["Ingress"],
                ingress=[
                    k8s.networking.v1.NetworkPolicyIngressRuleArgs(
                        from_=[
                            k8s.networking.v1.NetworkPolicyPeerArgs(
                                pod_selector=k8s.meta.v1.LabelSelectorArgs(match_labels=selector)
                            )
                            for selector in client_selectors
                        ],
                        ports=[k8s.networking.v1.NetworkPolicyPortArgs(protocol="TCP", port=POSTGRES_PORT)],
                    )
                ],
            ),
            opts=pulumi.ResourceOptions(parent=self),
        )
        self.register_outputs({})


HTTPS_PORT = 443
DNS_PORT = 53
ANYWHERE = ("0.0.0.0/0", "::/0")


def _peer_ips(cidrs: tuple[str, ...] | list[str]) -> list[k8s.networking.v1.NetworkPolicyPeerArgs]:
    return [k8s.networking.v1.NetworkPolicyPeerArgs(ip_block=k8s.networking.v1.IPBlockArgs(cidr=c)) for c in cidrs]


def _tcp(port: int) -> list[k8s.networking.v1.NetworkPolicyPortArgs]:
    return [k8s.networking.v1.NetworkPolicyPortArgs(protocol="TCP", port=port)]


class TrackingNetworkPolicy(pulumi.ComponentResource):
    """Ingress and egress of the tracking server's pods (see the module docstring for who and why)."""

    def __init__(
        self,
        name: str,
        cfg: StackConfig,
        names: Names,
        namespace: pulumi.Input[str],
        tracking_selector: dict[str, str],
        database_selector: dict[str, str] | None,
        opts: pulumi.ResourceOptions | None = None,
        migration_selector: dict[str, str] | None = None,
    ) -> None:
        """`database_selector` is None for an external database, whose address is not known here (port 5432
        is then allowed to any address)."""
        super().__init__(f"{TYPE_PREFIX}:TrackingNetworkPolicy", name, None, opts)
        peers = [k8s.networking.v1.NetworkPolicyPeerArgs(pod_selector=k8s.meta.v1.LabelSelectorArgs())]
        if cfg.exposed:
            # LoadBalancer: `externalTrafficPolicy: Local` keeps client addresses, so the source ranges apply here
            # too; NodePort (or a load balancer without ranges) is open to any address by the user's choice.
            peers += _peer_ips(cfg.load_balancer_source_ranges or ANYWHERE)
        if cfg.service_monitor:
            # Prometheus runs in its own namespace: without this its scrapes of /metrics are refused.
            peers.append(
                k8s.networking.v1.NetworkPolicyPeerArgs(
                    namespace_selector=k8s.meta.v1.LabelSelectorArgs(
                        match_labels={"kubernetes.io/metadata.name": cfg.prometheus_namespace}
                    )
                )
            )
        ingress = [k8s.networking.v1.NetworkPolicyIngressRuleArgs(from_=peers, ports=_tcp(cfg.tracking_port))]

        database = (
            [
                k8s.networking.v1.NetworkPolicyPeerArgs(
                    pod_selector=k8s.meta.v1.LabelSelectorArgs(match_labels=database_selector)
                )
            ]
            if database_selector
            else _peer_ips(ANYWHERE)
        )
        dns_ports = [
            k8s.networking.v1.NetworkPolicyPortArgs(protocol=protocol, port=DNS_PORT) for protocol in ("UDP", "TCP")
        ]
        kube_system = k8s.networking.v1.NetworkPolicyPeerArgs(
            namespace_selector=k8s.meta.v1.LabelSelectorArgs(
                match_labels={"kubernetes.io/metadata.name": "kube-system"}
            )
        )
        egress = [
            k8s.networking.v1.NetworkPolicyEgressRuleArgs(to=database, ports=_tcp(POSTGRES_PORT)),
            k8s.networking.v1.NetworkPolicyEgressRuleArgs(to=[kube_system], ports=dns_ports),
            k8s.networking.v1.NetworkPolicyEgressRuleArgs(to=_peer_ips(ANYWHERE), ports=_tcp(HTTPS_PORT)),
        ]
        if cfg.s3_identity == "pod-identity":
            # The artifact proxy's S3 credentials come from the node-local Pod Identity agent, on port 80.
            egress.append(
                k8s.networking.v1.NetworkPolicyEgressRuleArgs(
                    to=_peer_ips([POD_IDENTITY_AGENT]), ports=_tcp(POD_IDENTITY_AGENT_PORT)
                )
            )
        k8s.networking.v1.NetworkPolicy(
            f"{name}-tracking",
            metadata=k8s.meta.v1.ObjectMetaArgs(
                name=f"{names.tracking}-traffic", namespace=namespace, labels=labels(cfg.name_prefix, "tracking-server")
            ),
            spec=k8s.networking.v1.NetworkPolicySpecArgs(
                pod_selector=k8s.meta.v1.LabelSelectorArgs(match_labels=tracking_selector),
                policy_types=["Ingress", "Egress"],
                ingress=ingress,
                egress=egress,
            ),
            opts=pulumi.ResourceOptions(parent=self),
        )
        if migration_selector is not None:
            # The schema migration Job (`mlflow db upgrade`) needs only DNS and the database; it accepts nothing.
            k8s.networking.v1.NetworkPolicy(
                f"{name}-migration",
                metadata=k8s.meta.v1.ObjectMetaArgs(
                    name=f"{names.tracking}-db-upgrade-traffic",
                    namespace=namespace,
                    labels=labels(cfg.name_prefix, "schema-migration"),
                ),
                spec=k8s.networking.v1.NetworkPolicySpecArgs(
                    pod_selector=k8s.meta.v1.LabelSelectorArgs(match_labels=migration_selector),
                    policy_types=["Ingress", "Egress"],
                    ingress=[],
                    egress=egress[:2],
                ),
                opts=pulumi.ResourceOptions(parent=self),
            )
        self.register_outputs({})
