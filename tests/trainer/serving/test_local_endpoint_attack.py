"""An attacker on this machine against the local endpoint (`make serve`), on a stack with MLflow's login on.

Every port needs a key: the endpoint's port answers nothing, not even `/ping`, without the stack's login (401
with a Basic challenge, for no header, a wrong password, a wrong user, another scheme or a malformed header),
and the model servers behind it listen on no TCP port at all: their Unix sockets sit in a 0700 directory, so
another local user cannot even connect. Positive controls show that the same requests work with the login (and,
for the sockets' owner, straight to the socket), so each refusal is the lock, not a wrong address.
"""

from __future__ import annotations

import base64
import http.client
import io
import json
import os
import stat
import subprocess
import sys
from contextlib import redirect_stdout
from pathlib import Path

import psutil
import pytest
import requests
from airline_hpo import serve_check, train
from airline_hpo.errors import run_cli
from airline_hpo.serving.server import UnixHTTPConnection, invocation

from local_stack.processes import free_ports
from local_stack.settings import REPO_ROOT
from tests.other_local_user import connect_as_nobody

pytestmark = pytest.mark.integration


def _raw(port: int, method: str, path: str, authorization: str | None, body: bytes = b"") -> tuple[int, dict]:
    """One request with exactly this Authorization header (or none): status and headers."""
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
    headers = {"Content-Type": "application/json", **({"Authorization": authorization} if authorization else {})}
    try:
        conn.request(method, path, body=body if method == "POST" else None, headers=headers)
        response = conn.getresponse()
        response.read()
        return response.status, {k.lower(): v for k, v in response.getheaders()}
    finally:
        conn.close()


def _basic(user: str, password: str) -> str:
    return "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode()


def test_the_endpoint_answers_only_the_stacks_login_and_its_model_servers_only_through_it(
    local_stack, small_airline, monkeypatch
) -> None:
    stack = local_stack.stack  # the session's stack: MLflow's login is always on
    env = stack.client_env()
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    monkeypatch.setenv("MLFLOW_EXPERIMENT_NAME", "attack")
    user, password = env["MLFLOW_TRACKING_USERNAME"], env["MLFLOW_TRACKING_PASSWORD"]
    argv = ["--fpath", str(small_airline), "--engine", "sklearn", "--model-name", "attacked", "--seed", "1"]
    with redirect_stdout(io.StringIO()):
        assert run_cli(train.main, [*argv, "--n-estimators", "5", "--max-depth", "4", "--promote", "always"]) == 0
    (port,) = free_ports(1)
    command = [sys.executable, "-m", "local_stack", "--state-dir", str(stack.settings.state_dir), "serve"]
    started = subprocess.run(
        [*command, "--model-name", "attacked", "--detach"],
        cwd=REPO_ROOT,
        env={**os.environ, "SERVE_PORT": str(port)},
        capture_output=True,
        text=True,
        timeout=400,
        check=False,
    )
    assert started.returncode == 0, started.stderr
    assert "MLFLOW_TRACKING_PASSWORD" in started.stderr and password not in started.stdout + started.stderr
    try:
        rows = serve_check.sample_flights()[serve_check.model_inputs("models:/attacked@champion")]
        body = invocation(rows, "both")
        attempts = {
            "no header": None,
            "wrong password": _basic(user, password + "x"),
            "wrong user": _basic("nobody", password),
            "empty password": _basic(user, ""),
            "bearer": f"Bearer {password}",
            "malformed": "Basic %%%not-base64",
            "no colon": "Basic " + base64.b64encode(password.encode()).decode(),
        }
        for label, authorization in attempts.items():
            for method, path in (("GET", "/ping"), ("POST", "/invocations"), ("GET", "/version")):
                status, headers = _raw(port, method, path, authorization, body)
                assert status == 401, (label, method, path, status)
                assert headers["www-authenticate"].startswith("Basic realm="), (label, headers)
                assert "x-model-version" not in headers  # nothing reached a model server
        # Positive control: the same requests with the login are answered by the model.
        assert _raw(port, "GET", "/ping", _basic(user, password))[0] == 200
        status, headers = _raw(port, "POST", "/invocations", _basic(user, password), body)
        assert status == 200 and headers["x-model-version"] == "1"

        # Behind the port: the supervisor's model servers listen on no TCP port, only on Unix sockets ...
        supervisor = psutil.Process(json.loads(stack.settings.pid_file("serving").read_text())["pid"])
        tree = [supervisor, *supervisor.children(recursive=True)]
        tcp = {c.laddr.port for p in tree for c in p.net_connections("inet") if c.status == psutil.CONN_LISTEN}
        assert tcp == {port}, tcp  # the endpoint's own, nothing else
        sockets = {c.laddr for p in tree for c in p.net_connections("unix") if c.laddr and not c.raddr}
        assert sockets, "no model server socket found; this test no longer sees where they listen"
        for path in sockets:
            directory = Path(path).parent
            assert stat.S_IMODE(directory.stat().st_mode) == 0o700 and directory.stat().st_uid == os.getuid()
            # ... which another local user cannot even connect to (root here bypasses modes, so drop to nobody)
            as_nobody = connect_as_nobody(path)
            assert as_nobody.returncode != 0 and "PermissionError" in as_nobody.stderr, (path, as_nobody.stderr)
            # Positive control: the socket's owner (the proxy) reaches the model server there.
            conn = UnixHTTPConnection(path, timeout=10)
            conn.request("GET", "/ping")
            assert conn.getresponse().status == 200
            conn.close()
    finally:
        stopped = subprocess.run(
            [*command, "--stop"], cwd=REPO_ROOT, capture_output=True, text=True, timeout=120, check=False
        )
    assert stopped.stdout.strip() == "model endpoint stopped"
    assert not any(Path(path).parent.exists() for path in sockets)  # the private directory is removed
    with pytest.raises(requests.ConnectionError):
        requests.get(f"http://127.0.0.1:{port}/ping", timeout=5)
