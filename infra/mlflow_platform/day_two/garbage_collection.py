"""Garbage collection: a CronJob running `mlflow gc` for runs deleted longer ago than `gcOlderThan`.

Deleting a run in MLflow only marks it; its rows and artifacts stay until `mlflow gc` removes them for good.
Why the command looks as it does (read from MLflow 3.17's `mlflow gc`):
- `--backend-store-uri` from the database Secret through `$(MLFLOW_BACKEND_STORE_URI)`, expanded by the
  kubelet, so the password is in no manifest;
- with the artifact proxy, a run's artifact URI is `mlflow-artifacts:/...`, which `mlflow gc` can only delete
  through a tracking server: `MLFLOW_TRACKING_URI` names the in-cluster Service, and the server deletes the
  objects with its own S3 identity. `--artifacts-destination` is the proxy's destination, as the server has
  it, and S3 credentials are given too, for runs whose artifact URI is a plain `s3://` one (experiments
  created with an explicit artifact location);
- with basic auth the collector signs in as the admin, the only user allowed to delete any run's artifacts;
- `--older-than` leaves a window in which a run deleted by mistake can still be restored from the UI.
"""

from __future__ import annotations

import pulumi
import pulumi_kubernetes as k8s

from mlflow_platform.core.config import StackConfig
from mlflow_platform.core.cron_jobs import cron_job
from mlflow_platform.core.job_pods import home_env, job_container, job_pod_spec
from mlflow_platform.core.labels import labels, selector_labels
from mlflow_platform.core.naming import TYPE_PREFIX, Names
from mlflow_platform.core.pod_env import admin_env, plain_env, s3_env, secret_env
from mlflow_platform.core.pod_security import MLFLOW_UID

COMPONENT = "garbage-collection"


def gc_name(names: Names) -> str:
    return f"{names.prefix}-gc"


def gc_selector(cfg: StackConfig) -> dict[str, str]:
    return selector_labels(cfg.name_prefix, COMPONENT)


def gc_command(cfg: StackConfig, artifact_root: str) -> list[str]:
    return [
        "mlflow",
        "gc",
        f"--older-than={cfg.gc_older_than}",
        "--backend-store-uri=$(MLFLOW_BACKEND_STORE_URI)",
        f"--artifacts-destination={artifact_root}",
    ]


def gc_pod_spec(
    cfg: StackConfig, names: Names, artifact_root: pulumi.Input[str], tracking_uri: str
) -> k8s.core.v1.PodSpecArgs:
    env = [
        secret_env("MLFLOW_BACKEND_STORE_URI", names.db_secret),
        plain_env("MLFLOW_TRACKING_URI", tracking_uri),
        home_env(),
        plain_env("PYTHONUNBUFFERED", "1"),
        *s3_env(cfg, names),
    ]
    if cfg.basic_auth:
        env += admin_env(names)
    collector = job_container(
        "mlflow-gc",
        cfg.tracking_image,
        pulumi.Output.from_input(artifact_root).apply(lambda root: gc_command(cfg, root)),
        env,
        requests={"cpu": "100m", "memory": "512Mi"},
        limits={"cpu": "1", "memory": "1Gi"},
    )
    return job_pod_spec(MLFLOW_UID, [collector], scratch_size="256Mi", service_account=names.tracking_service_account)


class GarbageCollection(pulumi.ComponentResource):
    """The `mlflow gc` CronJob."""

    def __init__(
        self,
        name: str,
        cfg: StackConfig,
        names: Names,
        namespace: pulumi.Input[str],
        artifact_root: pulumi.Input[str],
        tracking_uri: str,
        opts: pulumi.ResourceOptions | None = None,
    ) -> None:
        super().__init__(f"{TYPE_PREFIX}:GarbageCollection", name, None, opts)
        version = cfg.tracking_image.rsplit(":", 1)[-1]
        self.cron_job = cron_job(
            f"{name}-cronjob",
            name=gc_name(names),
            namespace=namespace,
            object_labels=labels(cfg.name_prefix, COMPONENT, version=version),
            schedule=cfg.gc_schedule,
            pod_spec=gc_pod_spec(cfg, names, artifact_root, tracking_uri),
            active_deadline_seconds=2 * 3600,
            opts=pulumi.ResourceOptions(parent=self),
        )
        self.register_outputs({})
