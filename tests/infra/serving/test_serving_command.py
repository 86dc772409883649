"""The scoring Deployment's declared container, run for real against the local stack and asked for predictions.

The program runs under mocks with `serving: true`; the scoring container is resolved as the kubelet would
(`declared_pods.prepare`: its env from the declared values and Secrets, `/tmp` on a scratch directory) and
started as a process. Swapped, and only that: the tracking Service's URI for the local stack's server, the
listen address and port, the registered model's name (a fresh one, so the real champion is left alone) and, with
auth, the serving user's generated pair for the local stack's. The container gets no S3 key and no S3
endpoint: the model can only arrive through the tracking server's artifact proxy, as in the cluster.
"""

from __future__ import annotations

import os
import sys
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import mlflow
import numpy as np
import pandas as pd
import pulumi
import pytest
import requests
from declared_pods import Swaps, declared_secrets, prepare, run_to_completion, start, stop
from kube_api_standin import ApiRequest, kube_api_standin
from mock_harness import REPO, Deployment, manifests, run_program
from rbac_authorizer import DISCOVERY_RULES, allowing_rules, forbidden_message, request_attributes
from sklearn.linear_model import LogisticRegression

from local_stack.processes import free_ports

pytestmark = pytest.mark.integration

DEPLOYMENT, FOLLOWER = "rapids-mlflow-serving", "rapids-mlflow-serving-follower"
COLUMNS = ["a", "b", "c"]


def _register_champion(env: dict[str, str], name: str) -> tuple[LogisticRegression, pd.DataFrame]:
    """A small model registered as `name` with the `champion` alias, logged through the proxy."""
    rng = np.random.default_rng(7)
    frame = pd.DataFrame(rng.normal(size=(200, 3)), columns=COLUMNS)
    model = LogisticRegression().fit(frame, (frame["a"] + frame["b"] > 0).astype(int))
    # through the environment, never mlflow.set_tracking_uri: that pins the URI for every later test in the process
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("MLFLOW_TRACKING_URI", env["MLFLOW_TRACKING_URI"])
        with mlflow.start_run():
            info = mlflow.sklearn.log_model(
                model, name="model", input_example=frame.head(2), registered_model_name=name
            )
        client = mlflow.MlflowClient()
        client.set_registered_model_alias(name, "champion", info.registered_model_version)
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


@dataclass(frozen=True)
class Declared:
    """The program's serving resources, a registered champion, and the swaps that point them at the stack."""

    deployment: Deployment
    secrets: dict[str, dict[str, str]]
    name: str
    model: LogisticRegression
    rows: pd.DataFrame
    swaps: Swaps
    env: dict[str, str]


@pytest.fixture(scope="module")
def declared(local_stack) -> Iterator[Declared]:
    env = local_stack.env
    auth = "MLFLOW_TRACKING_USERNAME" in env
    d = run_program({"serving": "true", "servingImageTag": "0a1b2c3", **({"basicAuth": "true"} if auth else {})})
    pulumi.runtime.set_all_config({}, secret_keys=[])
    secrets = declared_secrets(d)
    name = f"serving-declared-{uuid.uuid4().hex[:8]}"
    with pytest.MonkeyPatch.context() as patch:
        for var, value in env.items():
            patch.setenv(var, value)  # this test's own client (registering the model) uses the stack
        model, rows = _register_champion(env, name)
    swaps = Swaps()
    swaps.add(d.exports["kube_mlflow_tracking_uri"], env["MLFLOW_TRACKING_URI"])
    swaps.add_exact("models:/airline-delay@champion", f"models:/{name}@champion")
    swaps.add_exact("airline-delay", name)  # the follower's --model-name
    if auth:
        serving = secrets["rapids-mlflow-serving-auth"]  # the serving user is proven in test_serving_user.py
        swaps.add_exact(serving["MLFLOW_TRACKING_USERNAME"], env["MLFLOW_TRACKING_USERNAME"])
        swaps.add_exact(serving["MLFLOW_TRACKING_PASSWORD"], env["MLFLOW_TRACKING_PASSWORD"])
    # The image's PATH holds its environment's scripts (MLflow execs `uvicorn` by name) and PYTHONPATH its
    # trainer code (trainer/Dockerfile); here, this venv's and this checkout's.
    image_env = {
        "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}",
        "PYTHONPATH": str(REPO / "trainer"),
    }
    yield Declared(d, secrets, name, model, rows, swaps, image_env)


def test_the_declared_scoring_container_serves_the_champion_through_the_proxy(
    declared: Declared, tmp_path: Path
) -> None:
    d, secrets, model, rows = declared.deployment, declared.secrets, declared.model, declared.rows
    pod = d.k8s_named("kubernetes:apps/v1:Deployment", DEPLOYMENT).inputs["spec"]["template"]["spec"]
    (container,) = pod["containers"]
    (port,) = free_ports(1)
    swaps = Swaps(list(declared.swaps.pairs), dict(declared.swaps.exact))
    swaps.add_exact("0.0.0.0", "127.0.0.1")
    swaps.add_exact(str(int(container["ports"][0]["containerPort"])), str(port))
    server = prepare(pod, container, secrets, tmp_path, swaps, endpoint_env=declared.env)
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


def _authorizer(rules: list[dict], user: str):
    def authorize(request: ApiRequest) -> str | None:
        attrs = request_attributes(request.method, request.path, request.query)
        return None if allowing_rules(rules + DISCOVERY_RULES, attrs) else forbidden_message(attrs, user)

    return authorize


def test_the_declared_follower_rolls_the_declared_deployment_within_its_role(declared: Declared, tmp_path) -> None:
    """The CronJob's container, run for real against the API stand-in holding the declared Deployment, every call
    authorized against the declared Role. Its one addition: `--kubeconfig` (the in-cluster config reads the
    token at a fixed path under /var/run/secrets, which a process here cannot be given)."""
    d = declared.deployment
    cron = d.k8s_named("kubernetes:batch/v1:CronJob", FOLLOWER)
    pod = cron.inputs["spec"]["jobTemplate"]["spec"]["template"]["spec"]
    (container,) = pod["containers"]
    role = d.k8s_named("kubernetes:rbac.authorization.k8s.io/v1:Role", FOLLOWER).inputs
    deployment = next(m for m in manifests(d) if m["kind"] == "Deployment" and m["metadata"]["name"] == DEPLOYMENT)
    user = f"system:serviceaccount:mlflow:{pod['serviceAccountName']}"
    with kube_api_standin(authorize=_authorizer(role["rules"], user), deployments=[deployment]) as api:
        kubeconfig = api.write_kubeconfig(tmp_path / "kubeconfig")
        follower = prepare(pod, container, declared.secrets, tmp_path, declared.swaps, endpoint_env=declared.env)
        follower.argv += ["--kubeconfig", str(kubeconfig)]
        first = run_to_completion(follower, cwd=tmp_path, timeout=120)
        assert first.returncode == 0, first.stderr[-3000:]
        assert f"{declared.name}@champion is version 1: rolling deployment {DEPLOYMENT}" in first.stdout
        template = api.state.deployments[("mlflow", DEPLOYMENT)]["spec"]["template"]["metadata"]["annotations"]
        assert template["serving.rapids-mlflow-stack/model-version"] == "1"
        assert "checksum/secrets" in template  # the patch merges; what Pulumi set stays
        again = run_to_completion(follower, cwd=tmp_path, timeout=120)
        assert again.returncode == 0 and "nothing to do" in again.stdout, again.stderr[-3000:]
        path = f"/apis/apps/v1/namespaces/mlflow/deployments/{DEPLOYMENT}"
        assert {(r.method, r.path) for r in api.requests} == {("GET", path), ("PATCH", path)}
