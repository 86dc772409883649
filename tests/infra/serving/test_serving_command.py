"""The scoring Deployment's declared container, run for real against the local stack and asked for predictions.

The program runs under mocks with `serving: true`; the scoring container is resolved as the kubelet would
(`declared_pods.prepare`: its env from the declared values and Secrets, `/tmp` on a scratch directory) and
started as a process. Swapped, and only that: the tracking Service's URI for the local stack's server, the
listen address and port, the registered model's name (a fresh one, so the real champion is left alone) and, with
auth, the training user's generated password for the local stack's. The container gets no S3 key and no S3
endpoint: the model can only arrive through the tracking server's artifact proxy, as in the cluster.
"""

from __future__ import annotations

import os
import sys
import time
import uuid
from pathlib import Path

import mlflow
import numpy as np
import pandas as pd
import pulumi
import pytest
import requests
from declared_pods import Swaps, declared_secrets, prepare, start, stop
from mock_harness import run_program
from sklearn.linear_model import LogisticRegression

from local_stack.processes import free_ports

pytestmark = pytest.mark.integration

DEPLOYMENT = "rapids-mlflow-serving"
COLUMNS = ["a", "b", "c"]


def _register_champion(env: dict[str, str], name: str) -> tuple[LogisticRegression, pd.DataFrame]:
    """A small model registered as `name` with the `champion` alias, logged through the proxy."""
    rng = np.random.default_rng(7)
    frame = pd.DataFrame(rng.normal(size=(200, 3)), columns=COLUMNS)
    model = LogisticRegression().fit(frame, (frame["a"] + frame["b"] > 0).astype(int))
    previous = mlflow.get_tracking_uri()
    mlflow.set_tracking_uri(env["MLFLOW_TRACKING_URI"])
    try:
        with mlflow.start_run():
            info = mlflow.sklearn.log_model(
                model, name="model", input_example=frame.head(2), registered_model_name=name
            )
        client = mlflow.MlflowClient()
        client.set_registered_model_alias(name, "champion", info.registered_model_version)
    finally:
        mlflow.set_tracking_uri(previous)
    return model, frame.head(5)


def _wait_ready(url: str, path: str, proc, log: Path, timeout: float = 240) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            pytest.fail(f"the declared scoring server exited with {proc.returncode}:\n{log.read_text()[-3000:]}")
        try:
            if requests.get(f"{url}{path}", timeout=3).status_code == 200:
                return
        except requests.RequestException:
            pass
        time.sleep(0.5)
    pytest.fail(f"the declared scoring server was not ready within {timeout:.0f}s:\n{log.read_text()[-3000:]}")


def test_the_declared_scoring_container_serves_the_champion_through_the_proxy(
    local_stack, tmp_path: Path, monkeypatch
) -> None:
    env = local_stack.env
    for var, value in env.items():
        monkeypatch.setenv(var, value)  # this test's own client (registering the model) uses the stack
    auth = "MLFLOW_TRACKING_USERNAME" in env
    d = run_program({"serving": "true", "servingImageTag": "0a1b2c3", **({"basicAuth": "true"} if auth else {})})
    pulumi.runtime.set_all_config({}, secret_keys=[])
    secrets = declared_secrets(d)
    pod = d.k8s_named("kubernetes:apps/v1:Deployment", DEPLOYMENT).inputs["spec"]["template"]["spec"]
    (container,) = pod["containers"]

    name = f"serving-declared-{uuid.uuid4().hex[:8]}"
    model, rows = _register_champion(env, name)
    (port,) = free_ports(1)
    swaps = Swaps()
    swaps.add(d.exports["kube_mlflow_tracking_uri"], env["MLFLOW_TRACKING_URI"])
    swaps.add_exact("0.0.0.0", "127.0.0.1")
    swaps.add_exact(str(int(container["ports"][0]["containerPort"])), str(port))
    swaps.add_exact("models:/airline-delay@champion", f"models:/{name}@champion")
    if auth:
        training = secrets["rapids-mlflow-training-auth"]
        swaps.add_exact(training["MLFLOW_TRACKING_USERNAME"], env["MLFLOW_TRACKING_USERNAME"])
        swaps.add_exact(training["MLFLOW_TRACKING_PASSWORD"], env["MLFLOW_TRACKING_PASSWORD"])
    # The image's PATH holds its environment's scripts (MLflow execs `uvicorn` by name); here, this venv's.
    image_path = {"PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}"}
    server = prepare(pod, container, secrets, tmp_path, swaps, endpoint_env=image_path)
    assert not [v for v in server.env if v.startswith(("AWS_", "MLFLOW_S3"))], server.env

    log = tmp_path / "scoring.log"
    proc = start(server, cwd=tmp_path, log=log)
    url = f"http://127.0.0.1:{port}"
    try:
        _wait_ready(url, container["readinessProbe"]["httpGet"]["path"], proc, log)
        answer = requests.post(
            f"{url}/invocations",
            json={"dataframe_split": rows.to_dict(orient="split", index=False)},
            timeout=60,
        )
        assert answer.status_code == 200, answer.text
        assert answer.json()["predictions"] == model.predict(rows).tolist()
    finally:
        stop(proc)
