"""Network isolation for the in-cluster PostgreSQL: only the tracking server's (and its migration Job's) pods
may connect.

Training Jobs, the UI's users and anything else in the cluster talk to the tracking server's API; none of
them needs the database, so a compromised training container cannot read or alter the tracking store
directly. (Enforced by any CNI that implements NetworkPolicy: Calico, Cilium, the VPC CNI with network
policies enabled on EKS; MicroK8s' default Calico does.)
"""

from __future__ import annotations

import pulumi
import pulumi_kubernetes as k8s

from .config import StackConfig
from .database import POSTGRES_PORT
from .labels import labels
from .naming import TYPE_PREFIX, Names


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
