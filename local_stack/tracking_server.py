"""The MLflow tracking server: PostgreSQL backend store, artifacts proxied to the S3 bucket, bound to 127.0.0.1.

Clients never need S3 keys for MLflow artifacts: the server's ``--artifacts-destination`` proxy holds them.
The database password travels in the environment (``MLFLOW_BACKEND_STORE_URI``), never on the command line,
where ``ps`` would show it.

With ``auth`` (``make up AUTH=1``) the server runs MLflow's basic-auth app as the cluster does with
``basicAuth``: users in the tracking database (its own ``alembic_version_auth`` table), an ``admin`` whose
generated password lives only in the 0600 credentials file, and the auth config written 0600 beside it.
"""

from __future__ import annotations

import base64
import configparser
import json
import os
import shutil
import sys
import urllib.request
from pathlib import Path

from local_stack import postgres
from local_stack.credentials import StackCredentials
from local_stack.processes import ServiceProcess
from local_stack.settings import StackSettings

SERVICE = "mlflow"
ADMIN_USERNAME = "admin"


def server_env(
    settings: StackSettings, creds: StackCredentials, database: str = postgres.MLFLOW_DATABASE
) -> dict[str, str]:
    """The server's environment: backend URI with its password, and the S3 keys its artifact proxy uses."""
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
    }
    if settings.auth:
        env.update(
            MLFLOW_AUTH_CONFIG_PATH=str(settings.auth_config_file),
            MLFLOW_AUTH_ADMIN_USERNAME=ADMIN_USERNAME,
            MLFLOW_AUTH_ADMIN_PASSWORD=creds.mlflow_admin_password,
            MLFLOW_FLASK_SERVER_SECRET_KEY=creds.flask_secret_key,
        )
    return env


def write_auth_config(
    settings: StackSettings, creds: StackCredentials, database: str = postgres.MLFLOW_DATABASE
) -> None:
    """MLflow's basic-auth config: users in the tracking database, new users see nothing they were not granted."""
    parser = configparser.ConfigParser()
    parser["mlflow"] = {
        "default_permission": "NO_PERMISSIONS",
        "database_uri": postgres.backend_store_uri(settings, creds, database).replace("%", "%%"),
        "admin_username": ADMIN_USERNAME,
        "authorization_function": "mlflow.server.auth:authenticate_request_basic_auth",
    }
    path: Path = settings.auth_config_file
    path.unlink(missing_ok=True)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w") as handle:
        parser.write(handle)


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
        *(["--app-name", "basic-auth"] if settings.auth else []),
        "--expose-prometheus",
        str(metrics_dir(settings, port)),
    ]


def client_credentials(settings: StackSettings, creds: StackCredentials) -> dict[str, str]:
    """The variables an MLflow client reads for basic auth: the stack's admin login. Exported with auth off too:
    the MLflow server then ignores it, but the model endpoint (``make serve``) always asks for it."""
    return {"MLFLOW_TRACKING_USERNAME": ADMIN_USERNAME, "MLFLOW_TRACKING_PASSWORD": creds.mlflow_admin_password}


def is_ready(base_url: str, credentials: dict[str, str] | None = None) -> bool:
    """``/health`` does not touch the database, so readiness also asks for the Default experiment."""
    with urllib.request.urlopen(f"{base_url}/health", timeout=3) as resp:
        if resp.status != 200:
            return False
    request = urllib.request.Request(f"{base_url}/api/2.0/mlflow/experiments/get-by-name?experiment_name=Default")
    if credentials:
        pair = f"{credentials['MLFLOW_TRACKING_USERNAME']}:{credentials['MLFLOW_TRACKING_PASSWORD']}"
        request.add_header("Authorization", "Basic " + base64.b64encode(pair.encode()).decode())
    with urllib.request.urlopen(request, timeout=5) as resp:
        return json.load(resp)["experiment"]["name"] == "Default"


def start(settings: StackSettings, creds: StackCredentials, process: ServiceProcess) -> None:
    if settings.auth:
        write_auth_config(settings, creds)
    # Files of a previous server's (dead) workers would be summed into this one's counters.
    shutil.rmtree(metrics_dir(settings, settings.mlflow_port), ignore_errors=True)
    process.start(server_argv(settings, settings.mlflow_port), env=server_env(settings, creds))
    # Schema migrations on an empty database take ~15 s on 2 cores.
    process.wait_until(
        lambda: is_ready(settings.tracking_uri, client_credentials(settings, creds)),
        timeout=120,
        what=f"{settings.tracking_uri}/health",
    )
