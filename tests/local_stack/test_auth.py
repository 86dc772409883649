"""MLflow's login on the local stack (always on: every port needs a key), as a user drives it through the CLI.

An MLflow server left running without the login by an older version: tests/local_stack/test_stack_reliability.py.
"""

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


def test_mlflow_needs_the_generated_admin_credentials_that_env_exports(local_stack) -> None:
    """Auth is the default: the suite's shared stack (started as plain `make up` starts one) asks every client for
    the admin's login, which only the 0600 credentials file and `make env` hold."""
    state = local_stack.stack.settings.state_dir
    creds = load_or_create(state / "credentials.json")
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

    # `up --auth` of older scripts still works (auth is on anyway), and `up` masks the password it mentions.
    again = _cli(state, "up", "--auth")
    assert again.returncode == 0, again.stderr
    assert creds.mlflow_admin_password not in again.stdout + again.stderr
    assert "every request needs a login: user admin" in again.stdout


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
