"""`make up AUTH=1`: the local stack with MLflow's basic-auth app, as a user drives it through the CLI."""

from __future__ import annotations

import base64
import json
import os
import shlex
import stat
import subprocess
import sys
import urllib.error
import urllib.request
from pathlib import Path

import pytest

from local_stack.credentials import load_or_create
from local_stack.processes import free_ports
from local_stack.settings import REPO_ROOT

pytestmark = pytest.mark.integration


def _cli(state_dir: Path, *args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "local_stack", "--state-dir", str(state_dir), *args],
        capture_output=True,
        text=True,
        cwd=REPO_ROOT,
        timeout=180,
        env=env,
    )


def _status(url: str, user: str | None = None, password: str | None = None) -> int:
    request = urllib.request.Request(url)
    if user is not None:
        request.add_header("Authorization", "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode())
    try:
        with urllib.request.urlopen(request, timeout=10) as response:
            return response.status
    except urllib.error.HTTPError as e:
        return e.code


def _exports(text: str) -> dict[str, str]:
    pairs = [shlex.split(line.removeprefix("export "))[0].split("=", 1) for line in text.splitlines()]
    return dict(pairs)


def test_up_with_auth_needs_the_generated_admin_credentials_that_env_exports(tmp_path: Path) -> None:
    state = tmp_path / "stack"
    pg, s3, mlflow_port = free_ports(3)
    ports = ("--postgres-port", str(pg), "--s3-port", str(s3), "--mlflow-port", str(mlflow_port))
    up = _cli(state, *ports, "up", "--auth")
    try:
        assert up.returncode == 0, up.stderr
        creds = load_or_create(state / "credentials.json")
        assert creds.mlflow_admin_password not in up.stdout + up.stderr  # `up` masks it
        for private in ("credentials.json", "basic_auth.ini"):
            assert stat.S_IMODE((state / private).stat().st_mode) == 0o600, private

        exported = _cli(state, "env")
        assert exported.returncode == 0, exported.stderr
        env = _exports(exported.stdout)
        assert env["MLFLOW_TRACKING_USERNAME"] == "admin"
        assert env["MLFLOW_TRACKING_PASSWORD"] == creds.mlflow_admin_password

        url = f"{env['MLFLOW_TRACKING_URI']}/api/2.0/mlflow/experiments/get-by-name?experiment_name=Default"
        assert _status(url) == 401
        assert _status(url, "admin", "wrong-password-123") == 401
        assert _status(url, env["MLFLOW_TRACKING_USERNAME"], env["MLFLOW_TRACKING_PASSWORD"]) == 200

        # A client with exactly what `make env` exports logs a run and an artifact through the proxy.
        client = subprocess.run(
            [
                sys.executable,
                "-c",
                "import mlflow\n"
                "with mlflow.start_run() as run:\n"
                "    mlflow.log_metric('m', 1.0)\n"
                "    mlflow.log_text('hello', 'note.txt')\n"
                "print(mlflow.artifacts.load_text(f'runs:/{run.info.run_id}/note.txt'))\n",
            ],
            capture_output=True,
            text=True,
            timeout=120,
            env={"PATH": os.environ.get("PATH", ""), "MLFLOW_HTTP_REQUEST_MAX_RETRIES": "0", **env},
        )
        assert client.returncode == 0, client.stderr[-2000:]
        assert client.stdout.strip().splitlines()[-1] == "hello"

        # Asking for the other mode while the server runs is one clear line, not a silent no-op.
        plain = _cli(state, "up")
        assert plain.returncode == 1
        assert plain.stderr.strip().splitlines() == [
            "error: the MLflow server is running with auth; run `make down`, then `make up` without AUTH=1"
        ]
    finally:
        _cli(state, "down", "--wipe")
    assert not state.exists()


def test_credentials_of_an_older_stack_gain_the_auth_keys_and_keep_the_rest(tmp_path: Path) -> None:
    path = tmp_path / "credentials.json"
    old = {"postgres_superuser_password": "a", "mlflow_db_password": "b", "s3_access_key": "c", "s3_secret_key": "d"}
    path.write_text(json.dumps(old))
    path.chmod(0o600)
    creds = load_or_create(path)
    assert (creds.postgres_superuser_password, creds.s3_secret_key) == ("a", "d")
    assert len(creds.mlflow_admin_password) >= 12
    assert load_or_create(path) == creds  # written back: the same password at the next start
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
