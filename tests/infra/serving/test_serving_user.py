"""The endpoint's read-only `serving` user, made by the declared Job and granted by the follower's declared init
container, proven against the declared tracking server running for real with basic auth (`declared_tracking`).

The program runs under mocks with `basicAuth` and `serving`; the tracking pod, its Jobs (the training and the
serving user's, in the order Pulumi imposes, before any model exists), then the follower's pod and the scoring
container run as processes. Swapped, and only that: the tracking Service's address for the declared server's,
listen addresses and ports. Every credential is the one the declared Secrets hold.
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
import pytest
import requests
from declared_pods import Swaps, cron_pod_spec, declared_secrets, prepare, run_to_completion, start, stop
from declared_tracking import DeclaredServer, declared_tracking_server
from kube_api_standin import kube_api_standin
from mlflow.exceptions import MlflowException
from mock_harness import REPO, manifests
from sklearn.linear_model import LogisticRegression

pytestmark = pytest.mark.integration

MODEL, DEPLOYMENT, FOLLOWER = "airline-delay", "rapids-mlflow-serving", "rapids-mlflow-serving-follower"
CONFIG = {"basicAuth": "true", "serving": "true", "servingImageTag": "0a1b2c3"}
COLUMNS = ["a", "b", "c"]


@dataclass(frozen=True)
class Stack:
    server: DeclaredServer
    secrets: dict[str, dict[str, str]]
    swaps: Swaps
    serving: tuple[str, str]

    @property
    def uri(self) -> str:
        return f"http://127.0.0.1:{self.server.port}"


@pytest.fixture(scope="module")
def stack(local_stack, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    with declared_tracking_server(local_stack, tmp_path_factory.mktemp("serving-user"), CONFIG) as server:
        secrets = declared_secrets(server.deployment)
        serving = secrets["rapids-mlflow-serving-auth"]
        swaps = Swaps().add(server.deployment.exports["kube_mlflow_tracking_uri"], f"http://127.0.0.1:{server.port}")
        yield Stack(server, secrets, swaps, (serving["MLFLOW_TRACKING_USERNAME"], serving["MLFLOW_TRACKING_PASSWORD"]))


def _signed_in(patch: pytest.MonkeyPatch, uri: str, who: tuple[str, str]) -> None:
    """A client of `uri` as `who`, with no S3 key or endpoint: artifacts only through the proxy."""
    for var in ("MLFLOW_S3_ENDPOINT_URL", "AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY"):
        patch.delenv(var, raising=False)
    patch.setenv("MLFLOW_TRACKING_URI", uri)
    patch.setenv("MLFLOW_TRACKING_USERNAME", who[0])
    patch.setenv("MLFLOW_TRACKING_PASSWORD", who[1])


def _register(stack: Stack, experiment: str, seed: int, sign: int = 1) -> tuple[LogisticRegression, pd.DataFrame, str]:
    """As the training user (what a search does): a model logged in `experiment`, registered, made champion."""
    rng = np.random.default_rng(seed)
    frame = pd.DataFrame(rng.normal(size=(200, 3)), columns=COLUMNS)
    model = LogisticRegression().fit(frame, (frame["a"] + sign * frame["b"] > 0).astype(int))
    with pytest.MonkeyPatch.context() as patch:
        _signed_in(patch, stack.uri, stack.server.training)
        experiment_id = mlflow.MlflowClient().create_experiment(experiment)
        with mlflow.start_run(experiment_id=experiment_id):
            info = mlflow.sklearn.log_model(
                model, name="model", input_example=frame.head(2), registered_model_name=MODEL
            )
        mlflow.MlflowClient().set_registered_model_alias(MODEL, "champion", info.registered_model_version)
    return model, frame.head(5), experiment_id


def _run_grants(stack: Stack, root: Path) -> str:
    """The follower pod's declared init container, run to completion (it must exit 0)."""
    pod = cron_pod_spec(stack.server.deployment, FOLLOWER)
    (init,) = pod["initContainers"]
    result = run_to_completion(prepare(pod, init, stack.secrets, root, stack.swaps), cwd=root, timeout=180)
    assert result.returncode == 0, result.stderr[-3000:]
    return result.stdout


def _image_env() -> dict[str, str]:
    """The training image's PATH (MLflow execs `uvicorn`) and PYTHONPATH (its trainer code): this venv's."""
    return {
        "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}",
        "PYTHONPATH": str(REPO / "trainer"),
    }


def _serve(stack: Stack, root: Path, rows: pd.DataFrame) -> list:
    """The declared scoring container, signed in with the serving Secret; its answers for `rows`."""
    from local_stack.processes import free_ports

    pod = stack.server.deployment.k8s_named("kubernetes:apps/v1:Deployment", DEPLOYMENT).inputs["spec"]["template"]
    (container,) = pod["spec"]["containers"]
    (port,) = free_ports(1)
    swaps = Swaps(list(stack.swaps.pairs), dict(stack.swaps.exact))
    swaps.add_exact("0.0.0.0", "127.0.0.1").add_exact(str(int(container["ports"][0]["containerPort"])), str(port))
    server = prepare(pod["spec"], container, stack.secrets, root, swaps, endpoint_env=_image_env())
    assert server.env["MLFLOW_TRACKING_USERNAME"] == "serving"
    log = root / "scoring.log"
    proc = start(server, cwd=root, log=log)
    try:
        deadline = time.monotonic() + 240
        while time.monotonic() < deadline:
            assert proc.poll() is None, f"the scoring server exited:\n{log.read_text()[-3000:]}"
            try:
                if requests.get(f"http://127.0.0.1:{port}/ping", timeout=3).status_code == 200:
                    break
            except requests.RequestException:
                pass
            time.sleep(0.5)
        else:
            pytest.fail(f"the scoring server was not ready in 240 s:\n{log.read_text()[-3000:]}")
        answer = requests.post(
            f"http://127.0.0.1:{port}/invocations",
            json={"dataframe_split": rows.to_dict(orient="split", index=False)},
            timeout=60,
        )
        assert answer.status_code == 200, answer.text
        return answer.json()["predictions"]
    finally:
        stop(proc)


def _follow(stack: Stack, root: Path) -> str:
    """The follower's declared container (signed in as the serving user) against the API stand-in."""
    d = stack.server.deployment
    pod = cron_pod_spec(d, FOLLOWER)
    (container,) = pod["containers"]
    deployment = next(m for m in manifests(d) if m["kind"] == "Deployment" and m["metadata"]["name"] == DEPLOYMENT)
    with kube_api_standin(deployments=[deployment]) as api:
        follower = prepare(pod, container, stack.secrets, root, stack.swaps, endpoint_env=_image_env())
        assert follower.env["MLFLOW_TRACKING_USERNAME"] == "serving"
        follower.argv += ["--kubeconfig", str(api.write_kubeconfig(root / "kubeconfig"))]
        result = run_to_completion(follower, cwd=root, timeout=120)
    assert result.returncode == 0, result.stderr[-3000:]
    return result.stdout


def test_the_serving_user_made_before_any_model_serves_each_champion_once_granted(stack: Stack, tmp_path) -> None:
    """The Job ran at `pulumi up` with no model registered; a search then registers the champion; the follower's
    init container grants what the proxy needs; the declared scoring container serves it as the serving user."""
    assert stack.serving[0] == "serving"
    model, rows, first_experiment = _register(stack, f"search-{uuid.uuid4().hex[:6]}", seed=1)
    with pytest.MonkeyPatch.context() as patch:
        _signed_in(patch, stack.uri, stack.serving)
        # The grant made before the model existed holds: the alias resolves.
        assert mlflow.MlflowClient().get_model_version_by_alias(MODEL, "champion").version == "1"
        # READ on the model alone does not let the proxy hand out its files (MLflow judges them by experiment).
        with pytest.raises(Exception, match="403"):
            mlflow.pyfunc.load_model(f"models:/{MODEL}@champion")
    assert f"READ granted on experiment {first_experiment}" in _run_grants(stack, tmp_path / "grants-1")
    assert "grants current" in _run_grants(stack, tmp_path / "grants-2")  # idempotent: nothing changes twice
    assert _serve(stack, tmp_path / "serve-1", rows) == model.predict(rows).tolist()
    assert "is version 1: rolling deployment" in _follow(stack, tmp_path / "follow-1")

    # A later search in a new experiment moves the alias: granted before the follower rolls, then loadable by the
    # serving user (the scoring container's command is proven above; what is new here is the grant).
    model2, rows2, second_experiment = _register(stack, f"search-{uuid.uuid4().hex[:6]}", seed=3, sign=-1)
    with pytest.MonkeyPatch.context() as patch:
        _signed_in(patch, stack.uri, stack.serving)
        with pytest.raises(Exception, match="403"):
            mlflow.pyfunc.load_model(f"models:/{MODEL}@champion")
    assert f"READ granted on experiment {second_experiment}" in _run_grants(stack, tmp_path / "grants-3")
    with pytest.MonkeyPatch.context() as patch:
        _signed_in(patch, stack.uri, stack.serving)
        served = mlflow.pyfunc.load_model(f"models:/{MODEL}@champion")
        assert served.predict(rows2).tolist() == model2.predict(rows2).tolist()


def test_the_serving_user_cannot_move_the_alias_or_write(stack: Stack, tmp_path) -> None:
    _, _, experiment_id = _register(stack, f"search-{uuid.uuid4().hex[:6]}", seed=2)
    _run_grants(stack, tmp_path)
    with pytest.MonkeyPatch.context() as patch:
        _signed_in(patch, stack.uri, stack.serving)
        client = mlflow.MlflowClient()
        version = client.get_model_version_by_alias(MODEL, "champion").version
        refused = {
            "move the alias": lambda: client.set_registered_model_alias(MODEL, "champion", "1"),
            "delete the alias": lambda: client.delete_registered_model_alias(MODEL, "champion"),
            "register a version": lambda: client.create_model_version(MODEL, f"runs:/{uuid.uuid4().hex}/model"),
            "delete a version": lambda: client.delete_model_version(MODEL, version),
            "delete the model": lambda: client.delete_registered_model(MODEL),
            "log a run": lambda: client.create_run(experiment_id),
            "rename the experiment": lambda: client.rename_experiment(experiment_id, "x"),
        }
        for what, call in refused.items():
            with pytest.raises(MlflowException, match=r"Permission denied") as error:
                call()
            assert error.value.get_http_status_code() == 403, what
        assert client.get_model_version_by_alias(MODEL, "champion").version == version  # unchanged
    admin_call = requests.post(
        f"{stack.uri}/api/2.0/mlflow/users/create",
        json={"username": "x" + uuid.uuid4().hex[:6], "password": "a-long-enough-password"},
        auth=stack.serving,
        timeout=30,
    )
    assert admin_call.status_code == 403
