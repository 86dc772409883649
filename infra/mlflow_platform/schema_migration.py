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

from . import pod_security
from .config import StackConfig
from .labels import labels, selector_labels
from .naming import Names

COMPONENT = "schema-migration"
MLFLOW_UID = 1000


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
    backend_env = k8s.core.v1.EnvVarArgs(
        name="MLFLOW_BACKEND_STORE_URI",
        value_from=k8s.core.v1.EnvVarSourceArgs(
            secret_key_ref=k8s.core.v1.SecretKeySelectorArgs(name=names.db_secret, key="MLFLOW_BACKEND_STORE_URI")
        ),
    )
    return k8s.batch.v1.Job(
        name,
        metadata=k8s.meta.v1.ObjectMetaArgs(
            name=database_checksum.apply(lambda c: job_name(cfg.name_prefix, cfg.tracking_image, c)),
            namespace=namespace,
            labels=object_labels,
        ),
        spec=k8s.batch.v1.JobSpecArgs(
            # A few retries for a database that is not accepting connections yet (a fresh RDS instance).
            backoff_limit=3,
            active_deadline_seconds=900,
            template=k8s.core.v1.PodTemplateSpecArgs(
                metadata=k8s.meta.v1.ObjectMetaArgs(labels=object_labels),
                spec=k8s.core.v1.PodSpecArgs(
                    restart_policy="Never",
                    automount_service_account_token=False,
                    security_context=pod_security.pod_context(MLFLOW_UID),
                    containers=[
                        k8s.core.v1.ContainerArgs(
                            name="db-upgrade",
                            image=cfg.tracking_image,
                            # $(VAR) is expanded by the kubelet from the container's env, so the URI stays
                            # out of the pod spec.
                            command=["mlflow", "db", "upgrade", "$(MLFLOW_BACKEND_STORE_URI)"],
                            env=[backend_env, k8s.core.v1.EnvVarArgs(name="HOME", value="/tmp")],
                            resources=k8s.core.v1.ResourceRequirementsArgs(
                                requests={"cpu": "100m", "memory": "512Mi"}, limits={"cpu": "1", "memory": "1Gi"}
                            ),
                            security_context=pod_security.container_context(read_only_root=True),
                            volume_mounts=[k8s.core.v1.VolumeMountArgs(name="tmp", mount_path="/tmp")],
                        )
                    ],
                    volumes=[pod_security.scratch_volume("tmp", "256Mi")],
                ),
            ),
        ),
        opts=opts,
    )
