"""Training pods accept no connections: a NetworkPolicy that selects them and allows no ingress.

A trial only calls out (to the tracking server, S3 and DNS); nothing in the cluster needs to reach it, so a
compromised or misbehaving pod elsewhere cannot talk to a training container (for example to a debugging port
a library opens). Egress stays open: S3 is reached at addresses a NetworkPolicy cannot name. Enforced only by a
CNI that implements NetworkPolicy (see `network_policy`).
"""

from __future__ import annotations

import pulumi
import pulumi_kubernetes as k8s

from mlflow_platform.core.config import StackConfig
from mlflow_platform.core.labels import labels
from mlflow_platform.core.naming import TYPE_PREFIX, Names
from mlflow_platform.training.job_template import JOB_COMPONENT, job_selector


class TrainingNetworkPolicy(pulumi.ComponentResource):
    """Deny all ingress to the pods of training Jobs launched from the job template."""

    def __init__(
        self,
        name: str,
        cfg: StackConfig,
        names: Names,
        namespace: pulumi.Input[str],
        opts: pulumi.ResourceOptions | None = None,
    ) -> None:
        super().__init__(f"{TYPE_PREFIX}:TrainingNetworkPolicy", name, None, opts)
        k8s.networking.v1.NetworkPolicy(
            f"{name}-deny-ingress",
            metadata=k8s.meta.v1.ObjectMetaArgs(
                name=names.training_network_policy, namespace=namespace, labels=labels(cfg.name_prefix, JOB_COMPONENT)
            ),
            spec=k8s.networking.v1.NetworkPolicySpecArgs(
                pod_selector=k8s.meta.v1.LabelSelectorArgs(match_labels=job_selector(cfg)),
                policy_types=["Ingress"],
                ingress=[],
            ),
            opts=pulumi.ResourceOptions(parent=self),
        )
        self.register_outputs({})
