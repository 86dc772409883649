"""Day-two operations on the cluster, composed in one place so `__main__` stays one line longer, not ten.

Backups of the in-cluster database (`backups`), `mlflow gc` (`garbage_collection`), the network policies of
those pods (`maintenance_network_policy`), the ServiceMonitor (`metrics`) and the tracking server's disruption
budget (`disruptions`), each declared only when its config says so.
"""

from __future__ import annotations

import pulumi

from mlflow_platform.aws.artifact_store import ArtifactStore
from mlflow_platform.core.config import StackConfig
from mlflow_platform.core.naming import TYPE_PREFIX, Names
from mlflow_platform.day_two.backups import DatabaseBackup, backup_selector
from mlflow_platform.day_two.garbage_collection import GarbageCollection, gc_selector
from mlflow_platform.day_two.metrics import TrackingServiceMonitor
from mlflow_platform.network.maintenance import MaintenanceNetworkPolicy
from mlflow_platform.tracking.database import Database
from mlflow_platform.tracking.disruptions import TrackingDisruptionBudget
from mlflow_platform.tracking.server import TrackingServer


class DayTwo(pulumi.ComponentResource):
    """The maintenance CronJobs, their network policies, the ServiceMonitor and the disruption budget."""

    def __init__(
        self,
        name: str,
        cfg: StackConfig,
        names: Names,
        namespace: pulumi.Input[str],
        store: ArtifactStore,
        database: Database,
        tracking: TrackingServer,
        opts: pulumi.ResourceOptions | None = None,
    ) -> None:
        super().__init__(f"{TYPE_PREFIX}:DayTwo", name, None, opts)
        child = pulumi.ResourceOptions(parent=self)
        if cfg.declares_backups:
            DatabaseBackup(f"{name}-backup", cfg, names, namespace, store.bucket_name, opts=child)
        if cfg.gc:
            GarbageCollection(
                f"{name}-gc", cfg, names, namespace, store.artifact_root, tracking.in_cluster_uri, opts=child
            )
        MaintenanceNetworkPolicy(
            f"{name}-network",
            cfg,
            names,
            namespace,
            database.selector if cfg.in_cluster_postgres else None,
            tracking.selector,
            backup_selector(cfg) if cfg.declares_backups else None,
            gc_selector(cfg) if cfg.gc else None,
            opts=child,
        )
        if cfg.service_monitor:
            TrackingServiceMonitor(f"{name}-metrics", cfg, names, namespace, tracking.selector, opts=child)
        if cfg.tracking_replicas > 1:
            TrackingDisruptionBudget(f"{name}-disruptions", cfg, names, namespace, tracking.selector, opts=child)
        self.register_outputs({})
