"""The local stack's MLflow UI in a real browser: without credentials the login challenge (auth is the default),
with the admin's (what `make env` exports) the runs the links open. It uses the suite's shared stack."""

from __future__ import annotations

import uuid
from collections.abc import Iterator

import pytest
from airline_hpo import ui_links
from mlflow import MlflowClient
from ui_browser import missing

pytestmark = [pytest.mark.integration, pytest.mark.skipif(missing() is not None, reason=str(missing()))]


@pytest.fixture(scope="module")
def auth_stack(local_stack) -> Iterator[tuple[dict[str, str], str, str, str]]:
    """The shared stack, and an experiment of this module's own with one run the admin logged."""
    env = local_stack.env
    with pytest.MonkeyPatch.context() as patch:
        for key, value in env.items():
            patch.setenv(key, value)
        client = MlflowClient(env["MLFLOW_TRACKING_URI"])
        experiment_id = client.create_experiment(f"ui-auth-{uuid.uuid4().hex[:6]}")
        run = client.create_run(experiment_id, run_name=f"run-{uuid.uuid4().hex[:6]}")
    yield env, experiment_id, run.info.run_id, run.info.run_name


def test_without_credentials_the_browser_gets_the_login_challenge(auth_stack, browser) -> None:
    env, experiment_id, _, run_name = auth_stack
    b = browser()
    b.open(ui_links.runs_url(env["MLFLOW_TRACKING_URI"], experiment_id))
    response = b.page_response(f"{env['MLFLOW_TRACKING_URI']}/")
    assert response["status"] == 401 and response["headers"].get("www-authenticate", "").startswith("Basic"), response
    assert run_name not in b.text()


def test_with_the_admins_credentials_the_runs_link_shows_the_run(auth_stack, browser) -> None:
    env, experiment_id, _, run_name = auth_stack
    b = browser(auth=(env["MLFLOW_TRACKING_USERNAME"], env["MLFLOW_TRACKING_PASSWORD"]))
    b.open(ui_links.runs_url(env["MLFLOW_TRACKING_URI"], experiment_id))
    b.wait_text(run_name)
    assert "Runs" in b.driver.title
