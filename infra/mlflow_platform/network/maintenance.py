"""Network isolation of the maintenance pods (database backup, `mlflow gc`), as strict as the other workloads.

Each maintenance pod accepts no connections and may open only the ones its job needs:
- DNS, to CoreDNS in kube-system (`k8s-app: kube-dns`, the label EKS and MicroK8s give it);
- PostgreSQL, on its port, to the database pods only (an external database: its port 5432 at any address);
- HTTPS (443) to any address: S3 and STS (IRSA) live at AWS addresses a NetworkPolicy cannot name;
- with EKS Pod Identity, the node-local agent at 169.254.170.23:80 that hands out the role's credentials;
- `mlflow gc` also the tracking server's pods, on its port (it deletes proxied artifacts through the server).

The database's own ingress policy (`network_policy.DatabaseNetworkPolicy`) admits only the tracking server;
NetworkPolicies add up, so a second policy here admits the maintenance pods too, without touching that one.
Enforced only by a CNI that implements NetworkPolicy (see `network_policy`).
"""

from __future__ import annotations

import pulumi
import pulumi_kubernetes as k8s

from mlflow_platform.core.config import StackConfig
from mlflow_platform.core.labels import labels
from mlflow_platform.core.naming import TYPE_PREFIX, Names
from mlflow_platform.network.platform import POD_IDENTITY_AGENT, POD_IDENTITY_AGENT_PORT
from mlflow_platform.tracking.database import POSTGRES_PORT

KUBE_DNS_SELECTOR = {"k8s-app": "kube-dns"}
SYSTEM_NAMESPACE_SELECTOR = {"kubernetes.io/metadata.name": "kube-system"}

_np = k8s.networking.v1


def _port(port: int, protocol: str = "TCP") -> k8s.networking.v1.NetworkPolicyPortArgs:
    return _np.NetworkPolicyPortArgs(protocol=protocol, port=port)


def _pods(selector: dict[str, str]) -> k8s.networking.v1.NetworkPolicyPeerArgs:
    return _np.NetworkPolicyPeerArgs(pod_selector=k8s.meta.v1.LabelSelectorArgs(match_labels=selector))


def egress_rules(
    cfg: StackConfig,
    database_selector: dict[str, str] | None,
    extra: list[k8s.networking.v1.NetworkPolicyEgressRuleArgs],
) -> list[k8s.networking.v1.NetworkPolicyEgressRuleArgs]:
    """DNS, the database (when in the cluster), HTTPS anywhere, the Pod Identity agent when used, and `extra`."""
    rules = [
        _np.NetworkPolicyEgressRuleArgs(
            to=[
                _np.NetworkPolicyPeerArgs(
                    namespace_selector=k8s.meta.v1.LabelSelectorArgs(match_labels=SYSTEM_NAMESPACE_SELECTOR),
                    pod_selector=k8s.meta.v1.LabelSelectorArgs(match_labels=KUBE_DNS_SELECTOR),
                )
            ],
            ports=[_port(53, "UDP"), _port(53, "TCP")],
        ),
        _np.NetworkPolicyEgressRuleArgs(
            to=[_np.NetworkPolicyPeerArgs(ip_block=_np.IPBlockArgs(cidr="0.0.0.0/0"))], ports=[_port(443)]
        ),
    ]
    if database_selector is not None:
        rules.append(_np.NetworkPolicyEgressRuleArgs(to=[_pods(database_selector)], ports=[_port(POSTGRES_PORT)]))
    else:
        # An external database (RDS) sits at an address only its secret URI holds: its usual port, anywhere.
        rules.append(
            _np.NetworkPolicyEgressRuleArgs(
                to=[_np.NetworkPolicyPeerArgs(ip_block=_np.IPBlockArgs(cidr="0.0.0.0/0"))], ports=[_port(POSTGRES_PORT)]
            )
        )
    if cfg.s3_identity == "pod-identity":
        rules.append(
            _np.NetworkPolicyEgressRuleArgs(
                to=[_np.NetworkPolicyPeerArgs(ip_block=_np.IPBlockArgs(cidr=POD_IDENTITY_AGENT))],
                ports=[_port(POD_IDENTITY_AGENT_PORT)],
            )
        )
    return rules + extra


class MaintenanceNetworkPolicy(pulumi.ComponentResource):
    """One policy per maintenance pod kind (no ingress, listed egress), plus the database's ingress for them."""

    def __init__(
        self,
        name: str,
        cfg: StackConfig,
        names: Names,
        namespace: pulumi.Input[str],
        database_selector: dict[str, str] | None,
        tracking_selector: dict[str, str],
        backup_selector: dict[str, str] | None,
        gc_selector: dict[str, str] | None,
        opts: pulumi.ResourceOptions | None = None,
    ) -> None:
        super().__init__(f"{TYPE_PREFIX}:MaintenanceNetworkPolicy", name, None, opts)
        child = pulumi.ResourceOptions(parent=self)

        def policy(suffix: str, component: str, selector: dict[str, str], spec_args: dict) -> None:
            # The Pulumi name says whose policy it is ("maintenance-..."), apart from the database's own.
            _np.NetworkPolicy(
                f"{name}-maintenance-{component}",
                metadata=k8s.meta.v1.ObjectMetaArgs(
                    name=f"{names.prefix}-{suffix}", namespace=namespace, labels=labels(cfg.name_prefix, component)
                ),
                spec=_np.NetworkPolicySpecArgs(
                    pod_selector=k8s.meta.v1.LabelSelectorArgs(match_labels=selector), **spec_args
                ),
                opts=child,
            )

        if backup_selector is not None:
            policy(
                "db-backup-egress",
                "database-backup",
                backup_selector,
                {
                    "policy_types": ["Ingress", "Egress"],
                    "ingress": [],
                    "egress": egress_rules(cfg, database_selector, []),
                },
            )
        if gc_selector is not None:
            to_tracking = _np.NetworkPolicyEgressRuleArgs(
                to=[_pods(tracking_selector)], ports=[_port(cfg.tracking_port)]
            )
            policy(
                "gc-egress",
                "garbage-collection",
                gc_selector,
                {
                    "policy_types": ["Ingress", "Egress"],
                    "ingress": [],
                    "egress": egress_rules(cfg, database_selector, [to_tracking]),
                },
            )
        clients = [s for s in (backup_selector, gc_selector) if s is not None]
        if database_selector is not None and clients:
            policy(
                "postgres-maintenance-ingress",
                "database",
                database_selector,
                {
                    "policy_types": ["Ingress"],
                    "ingress": [
                        _np.NetworkPolicyIngressRuleArgs(
                            from_=[_pods(s) for s in clients], ports=[_port(POSTGRES_PORT)]
                        )
                    ],
                },
            )
        self.register_outputs({})
