"""The tracking Deployment's declared command (externalUrl, basic auth) run for real, opened in a real browser at
the external name, which Chromium maps to 127.0.0.1 (`--host-resolver-rules`): the login challenge, the admin's
runs and a rename made in the UI, the `training` user's view, and a foreign host name refused.

A browser sends `Origin` on the UI's own POSTs and the page's host name in `Host`: the server's
`--cors-allowed-origins` and `--allowed-hosts` must list the external name, or these tests fail.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from dataclasses import dataclass

import pytest
import requests
from airline_hpo import ui_links
from declared_tracking import DeclaredServer, declared_tracking_server
from ui_browser import missing

from local_stack.processes import free_ports

# Skipped before the module's server or search starts when the browser is not installed (one line: what to install).
pytestmark = [pytest.mark.integration, pytest.mark.skipif(missing() is not None, reason=str(missing()))]

EXTERNAL_HOST = "mlflow.example.com"
FOREIGN_HOST = "rebind.evil.example.net"
TO_LOOPBACK = {EXTERNAL_HOST: "127.0.0.1", FOREIGN_HOST: "127.0.0.1"}
API = "/api/2.0/mlflow"


@dataclass(frozen=True)
class Site:
    server: DeclaredServer
    url: str  # externalUrl: what users open
    admins: tuple[str, str]  # (experiment id, run id) the admin created
    trainings: tuple[str, str]  # (experiment id, run id) the training user created
    names: dict[str, str]  # experiment and run names by id


def _experiment_with_run(server: DeclaredServer, who: tuple[str, str], names: dict[str, str]) -> tuple[str, str]:
    name = f"ui-{who[0]}-{uuid.uuid4().hex[:6]}"
    created = server.post(f"{API}/experiments/create", {"name": name}, {}, who)
    assert created.status_code == 200, created.text
    experiment_id = created.json()["experiment_id"]
    run = server.post(f"{API}/runs/create", {"experiment_id": experiment_id, "run_name": f"{name}-run"}, {}, who)
    assert run.status_code == 200, run.text
    run_id = run.json()["run"]["info"]["run_id"]
    names.update({experiment_id: name, run_id: f"{name}-run"})
    return experiment_id, run_id


@pytest.fixture(scope="module")
def site(local_stack, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Site]:
    (port,) = free_ports(1)
    url = f"http://{EXTERNAL_HOST}:{port}"
    config = {"externalUrl": url, "basicAuth": "true"}
    with declared_tracking_server(local_stack, tmp_path_factory.mktemp("declared-ui"), config, port) as server:
        names: dict[str, str] = {}
        admins = _experiment_with_run(server, server.admin, names)
        trainings = _experiment_with_run(server, server.training, names)
        yield Site(server, url, admins, trainings, names)


def test_without_credentials_the_browser_gets_the_login_challenge(site: Site, browser) -> None:
    b = browser(hosts=TO_LOOPBACK)
    experiment_id, _ = site.admins
    b.open(ui_links.runs_url(site.url, experiment_id))
    response = b.page_response(f"{site.url}/")
    assert response["status"] == 401 and response["headers"].get("www-authenticate", "").startswith("Basic"), response
    assert site.names[experiment_id] not in b.text()


def test_the_admin_sees_the_runs_and_renames_one_from_the_external_origin(site: Site, browser) -> None:
    from selenium.webdriver.common.keys import Keys  # imported here: without Selenium the module still collects

    b = browser(hosts=TO_LOOPBACK, auth=site.server.admin)
    experiment_id, run_id = site.admins
    b.open(ui_links.runs_url(site.url, experiment_id))
    b.wait_text(site.names[run_id])
    b.open(ui_links.run_url(site.url, experiment_id, run_id))
    b.wait_text(site.names[run_id])
    menu = "[data-testid=overflow-menu-trigger]"
    b.wait("the run's menu to open", lambda: b.driver.find_element("css selector", menu).click() or True)
    b.click_text("Rename")
    field = b.wait(
        "the rename field", lambda: b.driver.find_element("css selector", "[data-testid=rename-modal-input]")
    )
    new_name = f"renamed-{uuid.uuid4().hex[:6]}"
    field.send_keys(Keys.CONTROL, "a")
    field.send_keys(new_name)
    b.click_text("Save")
    b.wait_text(new_name)

    def stored_name() -> str:
        got = requests.get(
            f"http://127.0.0.1:{site.server.port}{API}/runs/get",
            params={"run_id": run_id},
            auth=site.server.admin,
            timeout=10,
        )
        return got.json()["run"]["info"]["run_name"]

    assert b.wait("the new name stored by the server", lambda: stored_name() == new_name, timeout=15)
    refused = [r for r in b.responses() if r["status"] == 403]
    assert not refused, [f"{r['status']} {r['url']}" for r in refused]


def test_the_same_page_from_a_foreign_host_name_is_refused(site: Site, browser) -> None:
    b = browser(hosts=TO_LOOPBACK, auth=site.server.admin)
    experiment_id, run_id = site.admins
    foreign = site.url.replace(EXTERNAL_HOST, FOREIGN_HOST)
    b.open(ui_links.runs_url(foreign, experiment_id))
    response = b.page_response(f"{foreign}/")
    assert response["status"] == 403, response
    assert site.names[run_id] not in b.text()


def test_the_training_user_sees_its_own_experiment_and_nothing_else(site: Site, browser) -> None:
    b = browser(hosts=TO_LOOPBACK, auth=site.server.training)
    own_experiment, own_run = site.trainings
    admins_experiment, admins_run = site.admins
    b.open(ui_links.runs_url(site.url, own_experiment))
    b.wait_text(site.names[own_run])
    b.open(f"{site.url}/#/experiments?workflowType={ui_links.WORKFLOW_TYPE}")
    b.wait_text(site.names[own_experiment])
    assert site.names[admins_experiment] not in b.text()
    b.open(ui_links.runs_url(site.url, admins_experiment))
    denied = f"{site.url}{API.replace('/api', '/ajax-api')}/experiments/get?experiment_id={admins_experiment}"
    b.wait(
        "the server's 403 for the admin's experiment",
        lambda: any(r["url"] == denied and r["status"] == 403 for r in b.responses()),
    )
    b.wait_text("Error")  # MLflow 3.17's UI shows a refused read as "Error INTERNAL_ERROR", never the data
    assert site.names[admins_run] not in b.text()
