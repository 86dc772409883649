"""The MLflow tracking server: PostgreSQL backend store, artifacts proxied to the S3 bucket, bound to 127.0.0.1.

Clients never need S3 keys for MLflow artifacts: the server's ``--artifacts-destination`` proxy holds them.
The database password travels in the environment (``MLFLOW_BACKEND_STORE_URI``), never on the command line,
where ``ps`` would show it.
"""

from __future__ import annotations

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


def server_env(settings: StackSettings, creds: StackCredentials, database: str = postgres.MLFLOW_DATABASE):
    """The server's environment: backend URI with its password, and the S3 keys its artifact proxy uses."""
    return {
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
    }


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
        "--expose-prometheus",
        str(metrics_dir(settings, port)),
    ]


def is_ready(base_url: str) -> bool:
    """``/health`` does not touch the database, so readiness also asks for the Default experiment."""
    with urllib.request.urlopen(f"{base_url}/health", timeout=3) as resp:
        if resp.status != 200:
            return False
    url = f"{base_url}/api/2.0/mlflow/experiments/get-by-name?experiment_name=Default"
    with urllib.request.urlopen(url, timeout=5) as resp:
        return json.load(resp)["experiment"]["name"] == "Default"


def start(settings: StackSettings, creds: StackCredentials, process: ServiceProcess) -> None:
    # Files of a previous server's (dead) workers would be summed into this one's counters.
    shutil.rmtree(metrics_dir(settings, settings.mlflow_port), ignore_errors=True)
    process.start(server_argv(settings, settings.mlflow_port), env=server_env(settings, creds))
    # Schema migrations on an empty database take ~15 s on 2 cores.
    process.wait_until(lambda: is_ready(settings.tracking_uri), timeout=120, what=f"{settings.tracking_uri}/health")
