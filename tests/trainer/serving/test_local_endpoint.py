"""The local endpoint (`make serve`) against the real local stack: it serves the champion, and when the alias
moves (the trainer's promotion, then the client's set_registered_model_alias) the same URL answers with the new
version within the bound, while a request loop sees no failed request. Real MLflow scoring servers, real registry.
Every request signs in with the stack's login, as `make env` exports it (the attacks without it are in
test_local_endpoint_attack.py).
"""

from __future__ import annotations

import io
import json
import os
import subprocess
import sys
import threading
import time
from contextlib import redirect_stdout

import mlflow
import numpy as np
import pytest
import requests
from airline_hpo import serve_check, train
from airline_hpo.errors import run_cli
from airline_hpo.serving.server import JSON_HEADERS, invocation, predict
from mlflow import MlflowClient

from local_stack.processes import free_ports
from local_stack.settings import REPO_ROOT

#: The issue's bound for an alias move to reach the endpoint.
SWITCH_BOUND_S = 120.0


def _train(fpath, name: str, seed: int) -> None:
    argv = ["--fpath", str(fpath), "--engine", "sklearn", "--seed", str(seed), "--model-name", name]
    with redirect_stdout(io.StringIO()):
        assert run_cli(train.main, [*argv, "--n-estimators", "8", "--max-depth", "5", "--promote", "always"]) == 0


def _serve(state_dir, port: int, *args: str) -> subprocess.CompletedProcess[str]:
    command = [sys.executable, "-m", "local_stack", "--state-dir", str(state_dir), "serve", *args]
    env = {**os.environ, "SERVE_PORT": str(port)}
    return subprocess.run(command, cwd=REPO_ROOT, env=env, capture_output=True, text=True, timeout=400, check=False)


class RequestLoop(threading.Thread):
    """A user asking the endpoint over and over: every answer's status and version (the X-Model-Version header)."""

    def __init__(self, url: str, rows, login: tuple[str, str]) -> None:
        super().__init__(daemon=True)
        self.url, self.rows, self.login = url, rows, login
        self.stop = threading.Event()
        self.versions: list[str] = []
        self.failures: list[str] = []

    def run(self) -> None:
        session = requests.Session()
        session.auth = self.login
        payload = invocation(self.rows, "both")
        while not self.stop.is_set():
            try:
                response = session.post(f"{self.url}/invocations", data=payload, headers=JSON_HEADERS, timeout=30)
                if response.status_code == 200:
                    self.versions.append(response.headers["X-Model-Version"])
                else:
                    self.failures.append(f"HTTP {response.status_code}: {response.text[:100]}")
            except requests.RequestException as exc:
                self.failures.append(repr(exc))

    def wait_for(self, version: str, timeout: float) -> float:
        started = time.monotonic()
        while time.monotonic() - started < timeout:
            if self.versions and self.versions[-1] == version:
                return time.monotonic() - started
            time.sleep(0.2)
        raise AssertionError(f"version {version} not served within {timeout}s (last {self.versions[-1:]})")


def _login(stack_env) -> tuple[str, str]:
    return stack_env.env["MLFLOW_TRACKING_USERNAME"], stack_env.env["MLFLOW_TRACKING_PASSWORD"]


def _answers(url: str, rows, login: tuple[str, str]) -> list[dict]:
    """What a client following docs/serving.md gets: the answer comes as columns, read back as one dict a row."""
    body = invocation(rows, "both")
    raw = requests.post(f"{url}/invocations", data=body, headers=JSON_HEADERS, timeout=30, auth=login)
    assert raw.status_code == 200, raw.text
    assert set(raw.json()["predictions"]) == {"label", "probability"}  # columns, not one object per row
    return predict(url, rows, "both", auth=login)


def _own_predict(name: str, version: str, rows) -> list[dict]:
    model = mlflow.pyfunc.load_model(f"models:/{name}/{version}")
    both = model.predict(rows, params={"output": "both"})
    columns = model.predict(rows, params={"output": "both", "orient": "columns"})  # what the endpoint is asked
    np.testing.assert_array_equal(columns["label"], both["label"])
    # allclose: the forest sums its trees in threads, so two calls may differ in the last bit
    np.testing.assert_allclose(columns["probability"], both["probability"], rtol=1e-12)
    return both.to_dict(orient="records")


def _assert_same(served: list[dict], own: list[dict]) -> None:
    assert [a["label"] for a in served] == [b["label"] for b in own]
    np.testing.assert_allclose([a["probability"] for a in served], [b["probability"] for b in own])


@pytest.mark.integration
def test_the_endpoint_follows_the_alias_with_no_failed_request(local_stack, stack_env, small_airline):
    name = f"{stack_env.experiment}-served"
    _train(small_airline, name, seed=1)
    state_dir = local_stack.stack.settings.state_dir
    (port,) = free_ports(1)
    started = _serve(state_dir, port, "--model-name", name, "--poll-seconds", "1", "--detach")
    assert started.returncode == 0, started.stderr
    url = started.stdout.strip().splitlines()[-1]
    assert url == f"http://127.0.0.1:{port}"
    try:
        rows = serve_check.sample_flights()[serve_check.model_inputs(f"models:/{name}@champion")]
        login = _login(stack_env)
        assert requests.get(f"{url}/ping", timeout=5, auth=login).headers["X-Model-Version"] == "1"
        _assert_same(_answers(url, rows, login), _own_predict(name, "1", rows))
        out = io.StringIO()
        with redirect_stdout(out):  # what `make demo` ends with: serve_check asking this endpoint
            assert run_cli(serve_check.main, ["--model-name", name, "--url", url, "--timeout", "30"]) == 0
        lines = out.getvalue().splitlines()
        assert lines[0] == f"asking the endpoint {url} (serving {name} version 1; champion is 1)"
        assert len(lines) == 1 + len(serve_check.SAMPLE_FLIGHTS) and all("P(late) = " in line for line in lines[1:])

        loop = RequestLoop(url, rows, login)
        loop.start()
        _train(small_airline, name, seed=2)  # the real promotion code moves champion to version 2
        assert MlflowClient().get_model_version_by_alias(name, "champion").version == "2"
        took = loop.wait_for("2", SWITCH_BOUND_S)
        _assert_same(_answers(url, rows, login), _own_predict(name, "2", rows))

        MlflowClient().set_registered_model_alias(name, "champion", "1")  # by hand, as in the UI
        took_back = loop.wait_for("1", SWITCH_BOUND_S)
        loop.stop.set()
        loop.join(timeout=60)
        assert loop.failures == []
        assert {"1", "2"} <= set(loop.versions) and len(loop.versions) > 20
        print(f"switches took {took:.1f}s and {took_back:.1f}s; {len(loop.versions)} requests, none failed")
    finally:
        stopped = _serve(state_dir, port, "--stop")
    assert stopped.stdout.strip() == "model endpoint stopped"
    with pytest.raises(requests.ConnectionError):
        requests.get(f"{url}/ping", timeout=5)


@pytest.mark.integration
def test_a_busy_port_and_a_missing_champion_are_one_line(local_stack, stack_env):
    state_dir = local_stack.stack.settings.state_dir
    (port,) = free_ports(1)
    with __import__("socket").socket() as holder:
        holder.bind(("127.0.0.1", port))
        holder.listen()
        busy = _serve(state_dir, port, "--detach")
    assert busy.returncode == 1
    assert busy.stderr.strip() == (
        f"error: port {port} for the model endpoint is already in use; choose another: SERVE_PORT=<port>"
    )
    missing = _serve(state_dir, port, "--model-name", f"{stack_env.experiment}-none", "--detach")
    assert missing.returncode == 1
    assert missing.stderr.strip() == (
        f"error: no model version {stack_env.experiment}-none@champion in the registry; run `make demo` "
        "(or the hyperopt entry point) to register and promote one first"
    )
    assert _serve(state_dir, port, "--stop").stdout.strip() == "no model endpoint was running"


@pytest.mark.integration
def test_make_down_stops_the_endpoint_and_its_model_servers(small_airline, tmp_path, monkeypatch):
    """`make down` is `python -m local_stack down`: the endpoint goes first, with every model server it ran."""
    import psutil
    from stack_fixtures import started_stack_cli

    with started_stack_cli(tmp_path / "stack") as stack:
        for name, value in stack.client_env().items():
            monkeypatch.setenv(name, value)
        monkeypatch.setenv("MLFLOW_EXPERIMENT_NAME", "down-test")
        _train(small_airline, "down-test", seed=1)
        (port,) = free_ports(1)
        started = _serve(stack.settings.state_dir, port, "--model-name", "down-test", "--detach")
        assert started.returncode == 0, started.stderr
        supervisor = psutil.Process(json.loads(stack.settings.pid_file("serving").read_text())["pid"])
        tree = [supervisor, *supervisor.children(recursive=True)]
        assert any("models" in " ".join(p.cmdline()) for p in tree)  # `mlflow models serve` runs under it
        down = subprocess.run(
            [sys.executable, "-m", "local_stack", "--state-dir", str(stack.settings.state_dir), "down"],
            cwd=REPO_ROOT,
            capture_output=True,
            text=True,
            timeout=120,
            check=False,
        )
        assert down.returncode == 0 and down.stdout.strip() == "stopped: serving, mlflow, s3, postgres"
        _, alive = psutil.wait_procs(tree, timeout=5)
        assert alive == []
        with pytest.raises(requests.ConnectionError):
            requests.get(f"http://127.0.0.1:{port}/ping", timeout=5)
