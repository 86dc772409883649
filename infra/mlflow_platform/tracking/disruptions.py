"""Voluntary disruptions (node drains, cluster upgrades) with more than one tracking replica.

- A PodDisruptionBudget with `maxUnavailable: 1`: a drain evicts one replica at a time, so the others keep
  serving; with 3+ replicas this keeps more capacity than `minAvailable: 1` would.
  `unhealthyPodEvictionPolicy: AlwaysAllow` lets a drain evict a replica that is not ready anyway (a
  crash-looping pod must not block a node upgrade).
- Topology spread across nodes (`kubernetes.io/hostname`, and zones where the nodes carry zone labels) with
  `whenUnsatisfiable: ScheduleAnyway`: replicas land on different nodes whenever the cluster has them, but a
  cluster with fewer nodes than replicas (MicroK8s, a one-node dev cluster) still runs every replica, and a
  rolling update's surge pod is never left Pending (`DoNotSchedule` would block the rollout there, because the
  Deployment never takes an old pod down before a new one is ready). `matchLabelKeys: [pod-template-hash]`
  spreads each rollout's pods by themselves, not against the old ReplicaSet's pods about to go.
With one replica neither is declared: a budget that forbids every eviction would block drains forever, and
one that allows it protects nothing.
"""

from __future__ import annotations

import pulumi
import pulumi_kubernetes as k8s

from mlflow_platform.core.config import StackConfig
from mlflow_platform.core.labels import labels
from mlflow_platform.core.naming import TYPE_PREFIX, Names

SPREAD_KEYS = ("kubernetes.io/hostname", "topology.kubernetes.io/zone")


def spread_constraints(
    cfg: StackConfig, selector: dict[str, str], replicas: int | None = None
) -> list[k8s.core.v1.TopologySpreadConstraintArgs] | None:
    """Spread the replicas (the tracking server's unless `replicas` is given) across nodes and zones (none for
    a single replica). The scoring Deployment (`serving.endpoint`) spreads its replicas the same way."""
    if (cfg.tracking_replicas if replicas is None else replicas) < 2:
        return None
    return [
        k8s.core.v1.TopologySpreadConstraintArgs(
            max_skew=1,
            topology_key=key,
            when_unsatisfiable="ScheduleAnyway",
            label_selector=k8s.meta.v1.LabelSelectorArgs(match_labels=selector),
            match_label_keys=["pod-template-hash"],
        )
        for key in SPREAD_KEYS
    ]


class TrackingDisruptionBudget(pulumi.ComponentResource):
    """At most one tracking replica evicted at a time (declared only with `trackingReplicas > 1`)."""

    def __init__(
        self,
        name: str,
        cfg: StackConfig,
        names: Names,
        namespace: pulumi.Input[str],
        selector: dict[str, str],
        opts: pulumi.ResourceOptions | None = None,
    ) -> None:
        super().__init__(f"{TYPE_PREFIX}:TrackingDisruptionBudget", name, None, opts)
        k8s.policy.v1.PodDisruptionBudget(
            f"{name}-pdb",
            metadata=k8s.meta.v1.ObjectMetaArgs(
                name=names.tracking, namespace=namespace, labels=labels(cfg.name_prefix, "tracking-server")
            ),
            spec=one_at_a_time(selector),
            opts=pulumi.ResourceOptions(parent=self),
        )
        self.register_outputs({})


def one_at_a_time(selector: dict[str, str]) -> k8s.policy.v1.PodDisruptionBudgetSpecArgs:
    """A budget that lets a drain evict one selected pod at a time, and any pod that is not ready anyway."""
    return k8s.policy.v1.PodDisruptionBudgetSpecArgs(
        max_unavailable=1,
        selector=k8s.meta.v1.LabelSelectorArgs(match_labels=selector),
        unhealthy_pod_eviction_policy="AlwaysAllow",
    )
