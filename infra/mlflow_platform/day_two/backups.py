"""Backups of the in-cluster PostgreSQL: a CronJob that dumps the MLflow database into the artifact bucket.

Design, and why:
- two containers in one pod, sharing a size-limited emptyDir: the init container runs `pg_dump` from the very
  PostgreSQL image the database runs (its client matches the server's version, which `pg_dump` requires), the
  main container uploads the file with boto3 from the MLflow `-full` image the tracking server already pulls.
  The PostgreSQL image has no AWS client and the MLflow image no `pg_dump`; neither a third image nor a shell
  pipeline is needed, and a failed dump never reaches the upload (an init container must succeed first);
- `--format=custom`: compressed, and `pg_restore` can list it, restore selected objects and run in parallel;
- the upload checks the archive's `PGDMP` signature first, so an empty or truncated file is never stored as a
  backup; each run writes a new key (`backups/<prefix>-<UTC time>.dump`) and prints it;
- credentials exactly as the tracking server gets them: the database password by `secretKeyRef` from the
  database Secret, S3 through the tracking server's ServiceAccount (IRSA / Pod Identity) or the S3 Secret;
  the identity may only *put* under `backups/` (see `artifact_store.identity_policy`), so the pods that share
  it cannot read a dump; operators restore with their own AWS credentials (README, "Day two");
- retention is the bucket's lifecycle rule on `backups/` (`artifact_store`), not a delete in the job, so the
  job's identity needs no delete right and a broken job cannot remove old backups.
"""

from __future__ import annotations

import pulumi
import pulumi_kubernetes as k8s

from mlflow_platform.core import pod_security
from mlflow_platform.core.config import BACKUP_PREFIX, StackConfig
from mlflow_platform.core.cron_jobs import cron_job
from mlflow_platform.core.job_pods import home_env, job_container, job_pod_spec, scratch_mount
from mlflow_platform.core.labels import labels, selector_labels
from mlflow_platform.core.naming import TYPE_PREFIX, Names
from mlflow_platform.core.pod_env import plain_env, s3_env, secret_env
from mlflow_platform.tracking.database import DB_NAME, DB_USER, POSTGRES_PORT, POSTGRES_UID

COMPONENT = "database-backup"
__all__ = ["BACKUP_PREFIX", "DatabaseBackup", "backup_pod_spec", "backup_selector"]
DUMP_DIR = "/backup"
DUMP_FILE = f"{DUMP_DIR}/mlflow.dump"

#: The upload, run by the MLflow image's Python (`python -c`): verify the archive, put it, print its key.
UPLOAD_SCRIPT = """\
import datetime, os, sys
import boto3
path = os.environ["BACKUP_FILE"]
with open(path, "rb") as f:
    if f.read(5) != b"PGDMP":
        sys.exit("refusing to upload " + path + ": not a pg_dump custom-format archive")
stamp = datetime.datetime.now(datetime.timezone.utc).strftime("%Y%m%dT%H%M%SZ")
key = os.environ["BACKUP_PREFIX"] + "/" + os.environ["BACKUP_NAME"] + "-" + stamp + ".dump"
boto3.client("s3").upload_file(path, os.environ["BACKUP_BUCKET"], key)
print("s3://" + os.environ["BACKUP_BUCKET"] + "/" + key)
"""


def backup_name(names: Names) -> str:
    return f"{names.prefix}-db-backup"


def backup_selector(cfg: StackConfig) -> dict[str, str]:
    return selector_labels(cfg.name_prefix, COMPONENT, name="postgresql")


def backup_pod_spec(cfg: StackConfig, names: Names, bucket: pulumi.Input[str]) -> k8s.core.v1.PodSpecArgs:
    """The backup pod: `pg_dump` into the emptyDir (init container), then the upload."""
    dump_mount = k8s.core.v1.VolumeMountArgs(name="backup", mount_path=DUMP_DIR)
    dump = job_container(
        "pg-dump",
        cfg.postgres_image,
        ["pg_dump", "--format=custom", "--no-password", f"--file={DUMP_FILE}"],
        [
            plain_env("PGHOST", names.service_fqdn(names.postgres)),
            plain_env("PGPORT", str(POSTGRES_PORT)),
            plain_env("PGUSER", DB_USER),
            plain_env("PGDATABASE", DB_NAME),
            plain_env("PGCONNECT_TIMEOUT", "20"),
            plain_env("PGAPPNAME", COMPONENT),
            secret_env("PGPASSWORD", names.db_secret, "POSTGRES_PASSWORD"),
        ],
        requests={"cpu": "100m", "memory": "128Mi"},
        limits={"cpu": "1", "memory": "512Mi"},
        volume_mounts=[dump_mount],
    )
    upload = job_container(
        "upload",
        cfg.tracking_image,
        ["python", "-c", UPLOAD_SCRIPT],
        [
            plain_env("BACKUP_FILE", DUMP_FILE),
            plain_env("BACKUP_BUCKET", bucket),
            plain_env("BACKUP_PREFIX", BACKUP_PREFIX),
            plain_env("BACKUP_NAME", names.prefix),
            home_env(),
            *s3_env(cfg, names),
        ],
        requests={"cpu": "100m", "memory": "256Mi"},
        limits={"cpu": "1", "memory": "512Mi"},
        volume_mounts=[
            k8s.core.v1.VolumeMountArgs(name="backup", mount_path=DUMP_DIR, read_only=True),
            scratch_mount(),
        ],
    )
    return job_pod_spec(
        POSTGRES_UID,
        [upload],
        scratch_size="64Mi",
        init_containers=[dump],
        # A dump is smaller than the database's volume, so that size bounds the scratch space.
        volumes=[pod_security.scratch_volume("backup", cfg.postgres_storage_size)],
        service_account=names.tracking_service_account,
    )


class DatabaseBackup(pulumi.ComponentResource):
    """The backup CronJob (in-cluster PostgreSQL only: an external database has its provider's snapshots)."""

    def __init__(
        self,
        name: str,
        cfg: StackConfig,
        names: Names,
        namespace: pulumi.Input[str],
        bucket: pulumi.Input[str],
        opts: pulumi.ResourceOptions | None = None,
    ) -> None:
        super().__init__(f"{TYPE_PREFIX}:DatabaseBackup", name, None, opts)
        version = cfg.postgres_image.rsplit(":", 1)[-1]
        self.cron_job = cron_job(
            f"{name}-cronjob",
            name=backup_name(names),
            namespace=namespace,
            object_labels=labels(cfg.name_prefix, COMPONENT, name="postgresql", version=version),
            schedule=cfg.backup_schedule,
            pod_spec=backup_pod_spec(cfg, names, bucket),
            active_deadline_seconds=3 * 3600,
            opts=pulumi.ResourceOptions(parent=self),
        )
        self.register_outputs({})
