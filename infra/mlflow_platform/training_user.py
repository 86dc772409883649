"""The training Jobs' own MLflow user, created through MLflow's auth REST API by a one-shot Job.

Why a dedicated user: a training container runs project code from an image built on a laptop; with the admin's
password it could read, change or delete every experiment and user. The `training` user (password generated into
its own Secret, the only MLflow credential the job template references) is an ordinary user: with
`default_permission = NO_PERMISSIONS` it manages the experiments and models it creates and nothing else, and the
admin endpoints (users, permissions) refuse it.

Why a Job, and why this one: the user must exist before any training Job runs, and MLflow keeps users in its own
tables, reachable only through the running server. So after the Deployment is ready (Pulumi waits for it), a Job
with the admin's credentials calls `users/create`, or, when the user exists, `users/update-password`, so it is
idempotent and a rotated password reaches the server. Its name carries a digest of both Secrets, so it runs again
exactly when one of them changes.
"""

from __future__ import annotations

import hashlib

import pulumi
import pulumi_kubernetes as k8s

from . import pod_security
from .config import StackConfig
from .labels import labels
from .naming import Names
from .schema_migration import MLFLOW_UID

COMPONENT = "training-user"

#: Run with `python -c` in the MLflow image: only MLflow's own client, nothing of this repository.
ENSURE_USER_SCRIPT = """\
import os
from mlflow.exceptions import RestException
from mlflow.server.auth.client import AuthServiceClient

client = AuthServiceClient(os.environ["MLFLOW_TRACKING_URI"])
username, password = os.environ["TRAINING_USERNAME"], os.environ["TRAINING_PASSWORD"]
try:
    client.create_user(username, password)
    print(f"created MLflow user {username}")
except RestException as error:
    if error.error_code != "RESOURCE_ALREADY_EXISTS":
        raise
    client.update_user_password(username, password)
    print(f"MLflow user {username} exists; password set")
"""


def job_name(prefix: str, secrets_checksum: str) -> str:
    """`<prefix>-training-user-<digest>`: at most 62 characters for a 40-character prefix."""
    return f"{prefix}-training-user-{hashlib.sha256(secrets_checksum.encode()).hexdigest()[:6]}"


def training_user_job(
    name: str,
    cfg: StackConfig,
    names: Names,
    namespace: pulumi.Input[str],
    tracking_uri: str,
    secrets_checksum: pulumi.Output[str],
    opts: pulumi.ResourceOptions,
) -> k8s.batch.v1.Job:
    """The Job that makes sure the `training` user exists with the password of its Secret."""

    def from_secret(var: str, secret: str, key: str) -> k8s.core.v1.EnvVarArgs:
        return k8s.core.v1.EnvVarArgs(
            name=var,
            value_from=k8s.core.v1.EnvVarSourceArgs(
                secret_key_ref=k8s.core.v1.SecretKeySelectorArgs(name=secret, key=key)
            ),
        )

    admin, training = names.auth_secret, names.training_auth_secret
    env = [
        k8s.core.v1.EnvVarArgs(name="MLFLOW_TRACKING_URI", value=tracking_uri),
        # The admin's pair under the names MLflow's client reads.
        from_secret("MLFLOW_TRACKING_USERNAME", admin, "MLFLOW_AUTH_ADMIN_USERNAME"),
        from_secret("MLFLOW_TRACKING_PASSWORD", admin, "MLFLOW_AUTH_ADMIN_PASSWORD"),
        from_secret("TRAINING_USERNAME", training, "MLFLOW_TRACKING_USERNAME"),
        from_secret("TRAINING_PASSWORD", training, "MLFLOW_TRACKING_PASSWORD"),
        k8s.core.v1.EnvVarArgs(name="HOME", value="/tmp"),
    ]
    object_labels = labels(cfg.name_prefix, COMPONENT, version=cfg.tracking_image.rsplit(":", 1)[-1])
    return k8s.batch.v1.Job(
        name,
        metadata=k8s.meta.v1.ObjectMetaArgs(
            name=secrets_checksum.apply(lambda c: job_name(cfg.name_prefix, c)),
            namespace=namespace,
            labels=object_labels,
        ),
        spec=k8s.batch.v1.JobSpecArgs(
            backoff_limit=3,
            active_deadline_seconds=600,
            template=k8s.core.v1.PodTemplateSpecArgs(
                metadata=k8s.meta.v1.ObjectMetaArgs(labels=object_labels),
                spec=k8s.core.v1.PodSpecArgs(
                    restart_policy="Never",
                    automount_service_account_token=False,
                    security_context=pod_security.pod_context(MLFLOW_UID),
                    containers=[
                        k8s.core.v1.ContainerArgs(
                            name="ensure-training-user",
                            image=cfg.tracking_image,
                            command=["python", "-c", ENSURE_USER_SCRIPT],
                            env=env,
                            resources=k8s.core.v1.ResourceRequirementsArgs(
                                requests={"cpu": "50m", "memory": "256Mi"}, limits={"cpu": "500m", "memory": "512Mi"}
                            ),
                            security_context=pod_security.container_context(read_only_root=True),
                            volume_mounts=[k8s.core.v1.VolumeMountArgs(name="tmp", mount_path="/tmp")],
                        )
                    ],
                    volumes=[pod_security.scratch_volume("tmp", "64Mi")],
                ),
            ),
        ),
        opts=opts,
    )
