"""MLflow's schema migration (`mlflow db upgrade`) as one Kubernetes Job per rollout, not an init container.

Why a Job: the server refuses to start on an out-of-date schema, so the migration must finish before any new
server pod starts; an init container does that, but in every replica at once (with `trackingReplicas > 1`,
several Alembic migrations race on the same tables) and again at every pod restart. A Job runs once, and Pulumi
waits for it to complete (its await logic for `batch/v1` Jobs) before it updates the Deployment, which depends
on it; a failed migration fails `pulumi up` with the Job's status instead of leaving pods crash-looping.

When it runs again: the Job's name carries a digest of the image and of the database Secret, so a new MLflow
version, another database or a rotated database password gives a new name, which Pulumi creates (and waits on)
before deleting the old Job; an unchanged stack re-runs nothing. `db upgrade` is idempotent, so a re-run on an
up-to-date schema is harmless. No TTL: the finished Job stays as the record of the last migration (Pulumi owns
it; a TTL would delete it behind Pulumi's back). The init-container variant for one replica was not kept: one
code path, tested once, and the Job costs nothing more.
"""

from __future__ import annotations

import hashlib

import pulumi
import pulumi_kubernetes as k8s

from mlflow_platform.core.config import StackConfig
from mlflow_platform.core.job_pods import home_env, job_container, job_pod_spec, one_shot_job
from mlflow_platform.core.labels import labels, selector_labels
from mlflow_platform.core.naming import Names
from mlflow_platform.core.pod_env import secret_env
from mlflow_platform.core.pod_security import MLFLOW_UID

COMPONENT = "schema-migration"


def job_name(prefix: str, image: str, database_checksum: str) -> str:
    """`<prefix>-db-upgrade-<digest>`: at most 60 characters for a 40-character prefix (Job names label pods,
    and label values stop at 63)."""
    digest = hashlib.sha256(f"{image}\n{database_checksum}".encode()).hexdigest()[:8]
    return f"{prefix}-db-upgrade-{digest}"


def migration_selector(cfg: StackConfig) -> dict[str, str]:
    """Labels of the migration's pods: the database's NetworkPolicy admits them beside the server's."""
    return selector_labels(cfg.name_prefix, COMPONENT)


def schema_migration_job(
    name: str,
    cfg: StackConfig,
    names: Names,
    namespace: pulumi.Input[str],
    database_checksum: pulumi.Output[str],
    opts: pulumi.ResourceOptions,
) -> k8s.batch.v1.Job:
    """The Job that runs `mlflow db upgrade` with the backend URI from the database Secret."""
    version = cfg.tracking_image.rsplit(":", 1)[-1]
    object_labels = labels(cfg.name_prefix, COMPONENT, version=version)
    upgrade = job_container(
        "db-upgrade",
        cfg.tracking_image,
        # $(VAR) is expanded by the kubelet from the container's env, so the URI stays out of the pod spec.
        ["mlflow", "db", "upgrade", "$(MLFLOW_BACKEND_STORE_URI)"],
        [secret_env("MLFLOW_BACKEND_STORE_URI", names.db_secret), home_env()],
        requests={"cpu": "100m", "memory": "512Mi"},
        limits={"cpu": "1", "memory": "1Gi"},
    )
    # The Job's retries cover a database that is not accepting connections yet (a fresh RDS instance).
    return one_shot_job(
        name,
        name=database_checksum.apply(lambda c: job_name(cfg.name_prefix, cfg.tracking_image, c)),
        namespace=namespace,
        object_labels=object_labels,
        pod_spec=job_pod_spec(MLFLOW_UID, [upgrade], scratch_size="256Mi"),
        active_deadline_seconds=900,
        opts=opts,
    )
