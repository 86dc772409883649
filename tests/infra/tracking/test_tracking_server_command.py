"""The tracking server's declared command, run for real, then asked what a browser and an attacker ask.

The program runs under mocks with `externalUrl` and basic auth, and its tracking pod runs for real
(`declared_tracking.py`). A flag the program forgets, or a wrong secret key name, fails here as it would in the
cluster.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator

import pytest
import requests
from declared_tracking import DeclaredServer, declared_tracking_server

pytestmark = pytest.mark.integration

EXTERNAL_URL = "https://mlflow.example.com"
EXTERNAL_HOST = "mlflow.example.com"
CONFIG = {"externalUrl": EXTERNAL_URL, "basicAuth": "true"}


@pytest.fixture(scope="module")
def declared_server(local_stack, tmp_path_factory: pytest.TempPathFactory) -> Iterator[DeclaredServer]:
    with declared_tracking_server(local_stack, tmp_path_factory.mktemp("declared-pod"), CONFIG) as server:
        yield server


SEARCH = "/ajax-api/2.0/mlflow/experiments/search"
BROWSER = {"Origin": EXTERNAL_URL, "Host": EXTERNAL_HOST}


def test_the_ui_from_the_external_origin_with_credentials_succeeds(declared_server: DeclaredServer) -> None:
    response = declared_server.post(SEARCH, {"max_results": 10}, BROWSER, declared_server.admin)
    assert response.status_code == 200, response.text
    assert any(e["name"] == "Default" for e in response.json()["experiments"])
    created = declared_server.post(
        "/api/2.0/mlflow/experiments/create", {"name": f"ui-{uuid.uuid4().hex[:6]}"}, BROWSER, declared_server.admin
    )
    assert created.status_code == 200, created.text


def test_a_foreign_origin_is_refused(declared_server: DeclaredServer) -> None:
    headers = {**BROWSER, "Origin": "https://evil.example.net"}
    response = declared_server.post(SEARCH, {"max_results": 1}, headers, declared_server.admin)
    assert response.status_code == 403
    assert "Cross-origin" in response.text


def test_a_foreign_host_is_refused(declared_server: DeclaredServer) -> None:
    headers = {"Host": "rebind.evil.example.net"}
    response = declared_server.post(SEARCH, {"max_results": 1}, headers, declared_server.admin)
    assert response.status_code == 403
    assert "Host" in response.text


def test_no_credentials_gets_401(declared_server: DeclaredServer) -> None:
    response = declared_server.post(SEARCH, {"max_results": 1}, BROWSER, None)
    assert response.status_code == 401


API = "/api/2.0/mlflow"


def _create_experiment(server: DeclaredServer, who: tuple[str, str]) -> str:
    response = server.post(f"{API}/experiments/create", {"name": f"exp-{uuid.uuid4().hex[:8]}"}, {}, who)
    assert response.status_code == 200, response.text
    return response.json()["experiment_id"]


def test_the_training_user_logs_to_the_experiments_it_creates(declared_server: DeclaredServer) -> None:
    training = declared_server.training
    assert training[0] == "training" and training[1] != declared_server.admin[1]
    experiment_id = _create_experiment(declared_server, training)
    run = declared_server.post(f"{API}/runs/create", {"experiment_id": experiment_id}, {}, training)
    assert run.status_code == 200, run.text
    run_id = run.json()["run"]["info"]["run_id"]
    metric = {"run_id": run_id, "key": "accuracy", "value": 0.7, "timestamp": 0, "step": 0}
    assert declared_server.post(f"{API}/runs/log-metric", metric, {}, training).status_code == 200


def test_the_training_user_cannot_touch_what_others_created(declared_server: DeclaredServer) -> None:
    admins = _create_experiment(declared_server, declared_server.admin)
    training = declared_server.training
    read = requests.get(
        f"http://127.0.0.1:{declared_server.port}{API}/experiments/get",
        params={"experiment_id": admins},
        auth=training,
        timeout=30,
    )
    assert read.status_code == 403
    write = declared_server.post(f"{API}/runs/create", {"experiment_id": admins}, {}, training)
    assert write.status_code == 403
    rename = declared_server.post(f"{API}/experiments/update", {"experiment_id": admins, "new_name": "x"}, {}, training)
    assert rename.status_code == 403


def test_the_training_user_cannot_call_admin_endpoints(declared_server: DeclaredServer) -> None:
    training = declared_server.training
    new_user = {"username": f"u{uuid.uuid4().hex[:6]}", "password": "a-long-enough-password"}
    assert declared_server.post(f"{API}/users/create", new_user, {}, training).status_code == 403
    promote = {"username": "training", "is_admin": True}
    response = requests.patch(
        f"http://127.0.0.1:{declared_server.port}{API}/users/update-admin", json=promote, auth=training, timeout=30
    )
    assert response.status_code == 403


def test_the_documented_grant_lets_training_log_to_a_submitters_experiment(declared_server: DeclaredServer) -> None:
    """What the README tells a submitter to do once per experiment, with MLflow's own client, as admin."""
    from mlflow.server.auth.client import AuthServiceClient

    experiment_id = _create_experiment(declared_server, declared_server.admin)
    user, password = declared_server.admin
    env = {"MLFLOW_TRACKING_USERNAME": user, "MLFLOW_TRACKING_PASSWORD": password}
    with pytest.MonkeyPatch.context() as patch:
        for key, value in env.items():
            patch.setenv(key, value)
        AuthServiceClient(f"http://127.0.0.1:{declared_server.port}").grant_user_permission(
            "training", "experiment", experiment_id, "EDIT"
        )
    run = declared_server.post(f"{API}/runs/create", {"experiment_id": experiment_id}, {}, declared_server.training)
    assert run.status_code == 200, run.text
