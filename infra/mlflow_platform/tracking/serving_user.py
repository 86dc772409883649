"""The scoring endpoint's own read-only MLflow user (`serving`), and the grants it needs, made with the admin's pair.

Why a user of its own: the scoring pods and the alias follower run the training image, and with the training
user's password they could log runs, register versions and move the alias. The `serving` user (password
generated into its own Secret, `names.serving_auth_secret`) holds READ and nothing else.

What READ must cover, measured against MLflow 3.17's auth app (tests/infra/serving/test_serving_user.py):
- READ on the registered model `servingModel` lets it resolve `models:/<model>@<alias>` and the version's download
  URI, and refuses `set_registered_model_alias`, deleting the alias or the model, and creating versions. The grant
  is stored by name, so it can be made before the model exists (a fresh stack has no champion at `pulumi up`).
- It is not enough to load the model: the artifact proxy judges a download by the experiment that holds the
  logged model (`mlflow/server/auth/__init__.py`, `_authorize_artifact_proxy_resolved`: READ on the experiment is
  required, whatever the registered model grants), so the user also gets READ on the experiment of every
  version of the model. Those experiments are not known at `pulumi up` and change with every search that
  registers a version, so the grants are made again before each run of the follower (an init container of its
  CronJob), ahead of any roll: a version the alias moves to is readable before its pods start.
- MLflow lets any signed-in user create experiments and models when workspaces are off (`_can_create_in_workspace`);
  a `DENY` on all experiments would stop that but also vetoes the READ on the served experiment (it wins the
  fold), so it is not used: the user can create new, empty resources of its own, and cannot touch anything else.

Why the admin: only it may grant on a model that does not exist yet and on experiments other users created. The
script runs in the pinned MLflow image with only MLflow's own client (like `training_user`), never in the
training image.
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
from mlflow_platform.tracking.training_user import ENSURE_USER_FUNCTION

COMPONENT = "serving-user"
AUTH_SERVING_USER = "serving"

#: Run with `python -c` in the MLflow image. With SERVING_PASSWORD (the Job) it also creates the user or sets its
#: password; without it (the follower's init container) it only brings the grants up to date.
SERVING_ACCESS_SCRIPT = (
    ENSURE_USER_FUNCTION
    + '''
from mlflow import MlflowClient
from mlflow.exceptions import MlflowException


def grant_read(client, username, resource_type, resource_id):
    """READ on one resource, replacing another explicit grant there (the user is read-only); True if changed."""
    if client.get_user_permission(username, resource_type, resource_id).permission == "READ":
        return False
    try:
        client.grant_user_permission(username, resource_type, resource_id, "READ")
    except RestException as error:
        if error.error_code != "RESOURCE_ALREADY_EXISTS":
            raise
        client.revoke_user_permission(username, resource_type, resource_id)
        client.grant_user_permission(username, resource_type, resource_id, "READ")
    return True


def experiments_of(client, model):
    """The experiments holding the model's versions (their runs' and logged models'); none before it exists."""
    found = set()
    for version in client.search_model_versions(f"name = '{model}'"):
        try:
            if version.run_id:
                found.add(client.get_run(version.run_id).info.experiment_id)
            if getattr(version, "model_id", None):
                found.add(client.get_logged_model(version.model_id).experiment_id)
        except MlflowException as error:
            if error.error_code != "RESOURCE_DOES_NOT_EXIST":  # a run or logged model removed by `mlflow gc`
                raise
    return sorted(found)


uri, username, model = (os.environ[v] for v in ("MLFLOW_TRACKING_URI", "SERVING_USERNAME", "SERVING_MODEL"))
auth = AuthServiceClient(uri)
if "SERVING_PASSWORD" in os.environ:
    ensure_user(auth, username, os.environ["SERVING_PASSWORD"])
granted = [f"registered model {model}"] if grant_read(auth, username, "registered_model", model) else []
for experiment_id in experiments_of(MlflowClient(uri), model):
    if grant_read(auth, username, "experiment", experiment_id):
        granted.append(f"experiment {experiment_id}")
if granted:
    print(f"MLflow user {username}: READ granted on {', '.join(granted)}")
else:
    print(f"MLflow user {username}: grants current")
'''
)


def job_name(prefix: str, secrets_checksum: str) -> str:
    """`<prefix>-serving-user-<digest>`: at most 61 characters for a 40-character prefix."""
    return f"{prefix}-serving-user-{hashlib.sha256(secrets_checksum.encode()).hexdigest()[:6]}"


def _access_env(cfg: StackConfig, names: Names, tracking_uri: str) -> list[k8s.core.v1.EnvVarArgs]:
    return [
        plain_env("MLFLOW_TRACKING_URI", tracking_uri),
        *admin_env(names),
        plain_env("SERVING_USERNAME", AUTH_SERVING_USER),
        plain_env("SERVING_MODEL", cfg.serving_model),
        home_env(),
    ]


def _access_container(name: str, cfg: StackConfig, env: list[k8s.core.v1.EnvVarArgs]) -> k8s.core.v1.ContainerArgs:
    return job_container(
        name,
        cfg.tracking_image,
        ["python", "-c", SERVING_ACCESS_SCRIPT],
        env,
        requests={"cpu": "50m", "memory": "256Mi"},
        limits={"cpu": "500m", "memory": "512Mi"},
    )


def serving_grants_container(cfg: StackConfig, names: Names, tracking_uri: str) -> k8s.core.v1.ContainerArgs:
    """The follower pod's init container: the grants, with the admin's pair and never the serving password."""
    return _access_container("grant-serving-read", cfg, _access_env(cfg, names, tracking_uri))


def serving_user_job(
    name: str,
    cfg: StackConfig,
    names: Names,
    namespace: pulumi.Input[str],
    tracking_uri: str,
    secrets_checksum: pulumi.Output[str],
    opts: pulumi.ResourceOptions,
) -> k8s.batch.v1.Job:
    """The Job that makes sure the `serving` user exists with its Secret's password and holds its READ grants.

    Its name carries a digest of the admin's and the serving Secret, so it runs again when either changes.
    """
    env = [
        *_access_env(cfg, names, tracking_uri),
        secret_env("SERVING_PASSWORD", names.serving_auth_secret, "MLFLOW_TRACKING_PASSWORD"),
    ]
    object_labels = labels(cfg.name_prefix, COMPONENT, version=cfg.tracking_image.rsplit(":", 1)[-1])
    return one_shot_job(
        name,
        name=secrets_checksum.apply(lambda c: job_name(cfg.name_prefix, c)),
        namespace=namespace,
        object_labels=object_labels,
        pod_spec=job_pod_spec(MLFLOW_UID, [_access_container("ensure-serving-user", cfg, env)], scratch_size="64Mi"),
        active_deadline_seconds=600,
        opts=opts,
    )
