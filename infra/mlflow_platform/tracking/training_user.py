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

from mlflow_platform.core.config import StackConfig
from mlflow_platform.core.job_pods import home_env, job_container, job_pod_spec, one_shot_job
from mlflow_platform.core.labels import labels
from mlflow_platform.core.naming import Names
from mlflow_platform.core.pod_env import admin_env, plain_env, secret_env
from mlflow_platform.core.pod_security import MLFLOW_UID

COMPONENT = "training-user"

#: Defines `ensure_user(client, username, password)`: create the user, or set its password when it exists (so a
#: rerun is idempotent and a rotated password reaches the server). Shared by every user the stack creates.
ENSURE_USER_FUNCTION = """\
import os
from mlflow.exceptions import RestException
from mlflow.server.auth.client import AuthServiceClient


def ensure_user(client, username, password):
    try:
        client.create_user(username, password)
        print(f"created MLflow user {username}")
    except RestException as error:
        if error.error_code != "RESOURCE_ALREADY_EXISTS":
            raise
        client.update_user_password(username, password)
        print(f"MLflow user {username} exists; password set")
"""

#: Run with `python -c` in the MLflow image: only MLflow's own client, nothing of this repository.
ENSURE_USER_SCRIPT = (
    ENSURE_USER_FUNCTION
    + """
client = AuthServiceClient(os.environ["MLFLOW_TRACKING_URI"])
ensure_user(client, os.environ["TRAINING_USERNAME"], os.environ["TRAINING_PASSWORD"])
"""
)


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
    training = names.training_auth_secret
    env = [
        plain_env("MLFLOW_TRACKING_URI", tracking_uri),
        *admin_env(names),
        secret_env("TRAINING_USERNAME", training, "MLFLOW_TRACKING_USERNAME"),
        secret_env("TRAINING_PASSWORD", training, "MLFLOW_TRACKING_PASSWORD"),
        home_env(),
    ]
    ensure = job_container(
        "ensure-training-user",
        cfg.tracking_image,
        ["python", "-c", ENSURE_USER_SCRIPT],
        env,
        requests={"cpu": "50m", "memory": "256Mi"},
        limits={"cpu": "500m", "memory": "512Mi"},
    )
    object_labels = labels(cfg.name_prefix, COMPONENT, version=cfg.tracking_image.rsplit(":", 1)[-1])
    return one_shot_job(
        name,
        name=secrets_checksum.apply(lambda c: job_name(cfg.name_prefix, c)),
        namespace=namespace,
        object_labels=object_labels,
        pod_spec=job_pod_spec(MLFLOW_UID, [ensure], scratch_size="64Mi"),
        active_deadline_seconds=600,
        opts=opts,
    )
