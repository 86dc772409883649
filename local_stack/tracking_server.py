"""The MLflow tracking server: PostgreSQL backend store, artifacts proxied to the S3 bucket, bound to 127.0.0.1.

Clients never need S3 keys for MLflow artifacts: the server's ``--artifacts-destination`` proxy holds them.
The database password travels in the environment (``MLFLOW_BACKEND_STORE_URI``), never on the command line,
where ``ps`` would show it.

Every port needs a key, this one too: the server always runs MLflow's basic-auth app, as the cluster does with
``basicAuth``: users in the tracking database (its own ``alembic_version_auth`` table), an ``admin`` whose
generated password lives only in the 0600 credentials file, and the auth config written 0600 beside it. Without
credentials it answers 401 to every API, UI and ``/metrics`` request; only ``/health``, ``/static`` and MLflow's
public ``server-info`` answer anyone (they carry no tracking data).
"""

from __future__ import annotations

import base64
import configparser
import contextlib
import itertools
import json
import os
import shutil
import sys
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import psutil

from local_stack import postgres
from local_stack.credentials import StackCredentials
from local_stack.processes import ServiceProcess
from local_stack.settings import StackSettings

SERVICE = "mlflow"
ADMIN_USERNAME = "admin"
#: MLflow's ``--app-name`` for basic auth; a server started without it (by an older version) answers anyone.
AUTH_APP = "basic-auth"


def server_env(
    settings: StackSettings,
    creds: StackCredentials,
    database: str = postgres.MLFLOW_DATABASE,
    auth_config: Path | None = None,
) -> dict[str, str]:
    """The server's environment: backend URI with its password, the S3 keys its artifact proxy uses, and the
    auth app's config (``auth_config``, default the stack's) and admin credentials."""
    env = {
        "PATH": os.environ.get("PATH", ""),
        "HOME": os.environ.get("HOME", "/tmp"),
        "MLFLOW_BACKEND_STORE_URI": postgres.backend_store_uri(settings, creds, database),
        "MLFLOW_S3_ENDPOINT_URL": settings.s3_endpoint,
        "AWS_ACCESS_KEY_ID": creds.s3_access_key,
        "AWS_SECRET_ACCESS_KEY": creds.s3_secret_key,
        "AWS_DEFAULT_REGION": "us-east-1",
        # Server-side job execution starts seven extra consumer processes (~1.5 GB) that tracking never uses.
        "MLFLOW_SERVER_ENABLE_JOB_EXECUTION": "false",
        "PYTHONUNBUFFERED": "1",
        # MLflow 3.17 sends usage telemetry by default; a local stack phones nobody.
        "MLFLOW_DISABLE_TELEMETRY": "true",
        "MLFLOW_AUTH_CONFIG_PATH": str(auth_config or settings.auth_config_file),
        "MLFLOW_AUTH_ADMIN_USERNAME": ADMIN_USERNAME,
        "MLFLOW_AUTH_ADMIN_PASSWORD": creds.mlflow_admin_password,
        "MLFLOW_FLASK_SERVER_SECRET_KEY": creds.flask_secret_key,
    }
    return env


#: How long MLflow may keep a successful login check (see :func:`write_auth_config`).
AUTH_CACHE_SECONDS = 60


def write_auth_config(
    settings: StackSettings,
    creds: StackCredentials,
    database: str = postgres.MLFLOW_DATABASE,
    path: Path | None = None,
) -> Path:
    """MLflow's basic-auth config (at ``path``, default the stack's): users in the tracking database ``database``,
    new users see nothing they were not granted. Returns its path."""
    parser = configparser.ConfigParser()
    parser["mlflow"] = {
        "default_permission": "NO_PERMISSIONS",
        "database_uri": postgres.backend_store_uri(settings, creds, database).replace("%", "%%"),
        "admin_username": ADMIN_USERNAME,
        "authorization_function": "mlflow.server.auth:authenticate_request_basic_auth",
        # MLflow checks the password's scrypt hash on every request (about 0.1-0.2 s of CPU each on 2 cores), which
        # made every call of a search slow enough to push a stopping search's last writes past its grace budget.
        # MLflow 3.17's own cache keeps a successful check for this long (per worker, keyed by an HMAC of the
        # password); a wrong password is never cached. Cost: a password changed through one worker may still open
        # the other for up to a minute.
        "auth_cache_ttl_seconds": str(AUTH_CACHE_SECONDS),
    }
    path = path or settings.auth_config_file
    path.unlink(missing_ok=True)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w") as handle:
        parser.write(handle)
    return path


def scratch_server_env(
    settings: StackSettings, creds: StackCredentials, database: str, workdir: Path
) -> dict[str, str]:
    """The environment of a second, short-lived server on another database (an upgrade rehearsal, a test): its
    own auth config in ``workdir``, so it asks for the same admin credentials and keeps its users in ``database``."""
    config = write_auth_config(settings, creds, database, workdir / "basic_auth.ini")
    return server_env(settings, creds, database, config)


def metrics_dir(settings: StackSettings, port: int) -> Path:
    """Prometheus' multiprocess files (one set per server port), so the workers' counters add up on ``/metrics``."""
    return settings.state_dir / "prometheus" / str(port)


def server_argv(settings: StackSettings, port: int) -> list[str]:
    return [
        sys.executable,
        "-m",
        "mlflow",
        "server",
        "--host",
        settings.host,
        "--port",
        str(port),
        "--workers",
        "2",
        "--serve-artifacts",
        "--artifacts-destination",
        f"s3://{settings.bucket}/{settings.artifact_prefix}",
        "--app-name",
        AUTH_APP,
        "--expose-prometheus",
        str(metrics_dir(settings, port)),
    ]


def client_credentials(creds: StackCredentials) -> dict[str, str]:
    """The variables an MLflow client reads for basic auth (``make env`` exports them); the model endpoint
    (``make serve``) asks for the same login."""
    return {"MLFLOW_TRACKING_USERNAME": ADMIN_USERNAME, "MLFLOW_TRACKING_PASSWORD": creds.mlflow_admin_password}


@contextlib.contextmanager
def logged_in(creds: StackCredentials) -> Iterator[None]:
    """MLflow's client takes the login only from the environment: set this stack's for the block, then put back
    what was there (a process can talk to several stacks, each with its own admin password)."""
    wanted = client_credentials(creds)
    saved = {name: os.environ.get(name) for name in wanted}
    os.environ.update(wanted)
    try:
        yield
    finally:
        for name, value in saved.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value


def auth_header(credentials: dict[str, str]) -> dict[str, str]:
    """The ``Authorization`` header a raw HTTP request needs, from :func:`client_credentials`' variables."""
    pair = f"{credentials['MLFLOW_TRACKING_USERNAME']}:{credentials['MLFLOW_TRACKING_PASSWORD']}"
    return {"Authorization": "Basic " + base64.b64encode(pair.encode()).decode()}


def requires_login(pid: int) -> bool:
    """Whether the server led by ``pid`` runs the auth app: one started by a version before auth became the default
    answers anyone on this machine, and only its command line tells."""
    try:
        argv = psutil.Process(pid).cmdline()
    except psutil.Error:
        return False
    return ("--app-name", AUTH_APP) in itertools.pairwise(argv)


def is_ready(base_url: str, credentials: dict[str, str]) -> bool:
    """``/health`` does not touch the database, so readiness also asks for the Default experiment (with
    ``credentials``, as :func:`client_credentials` gives them: the API answers nothing without)."""
    with urllib.request.urlopen(f"{base_url}/health", timeout=3) as resp:
        if resp.status != 200:
            return False
    request = urllib.request.Request(
        f"{base_url}/api/2.0/mlflow/experiments/get-by-name?experiment_name=Default", headers=auth_header(credentials)
    )
    with urllib.request.urlopen(request, timeout=5) as resp:
        return json.load(resp)["experiment"]["name"] == "Default"


def start(settings: StackSettings, creds: StackCredentials, process: ServiceProcess) -> None:
    write_auth_config(settings, creds)
    # Files of a previous server's (dead) workers would be summed into this one's counters.
    shutil.rmtree(metrics_dir(settings, settings.mlflow_port), ignore_errors=True)
    process.start(server_argv(settings, settings.mlflow_port), env=server_env(settings, creds))
    # Schema migrations on an empty database take ~15 s on 2 cores.
    process.wait_until(
        lambda: is_ready(settings.tracking_uri, client_credentials(creds)),
        timeout=120,
        what=f"{settings.tracking_uri}/health",
    )
