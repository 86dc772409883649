"""After a search, the links `make demo` prints, followed in a real browser: the runs view lists the parent run with
its trials nested under it, the parent's plots render, and the model's page shows `champion` on its version."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import mlflow
import pytest
from airline_hpo import ui_links
from airline_hpo.data.prepare import load_flights, sample_rows, to_airline_schema
from airline_hpo.demo import summary
from airline_hpo.model.engines import SklearnEngine
from airline_hpo.search.driver import SearchConfig, SearchResult, run_search
from ui_browser import missing

# Skipped before the module's server or search starts when the browser is not installed (one line: what to install).
pytestmark = [pytest.mark.integration, pytest.mark.skipif(missing() is not None, reason=str(missing()))]


@dataclass(frozen=True)
class Searched:
    result: SearchResult
    model_name: str
    links: dict[str, str]  # what `make demo` prints, label -> the link alone
    trial_names: list[str]
    login: tuple[str, str]  # the stack's admin, as the user answers the browser's login prompt


@pytest.fixture(scope="module")
def searched(local_stack, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Searched]:
    """A small search against the local stack, in an experiment and a model of this module's own."""
    data = tmp_path_factory.mktemp("ui-data") / "airline.parquet"
    sample_rows(to_airline_schema(load_flights()), 3000, seed=1).to_parquet(data, index=False)
    name = f"ui-{uuid.uuid4().hex[:8]}"
    with pytest.MonkeyPatch.context() as patch:
        for key, value in {**local_stack.env, "MLFLOW_EXPERIMENT_NAME": name}.items():
            patch.setenv(key, value)
        patch.delenv("MLFLOW_RUN_ID", raising=False)
        config = SearchConfig(
            fpath=str(data), model_name=name, max_evals=4, trees_max=12, depth_max=6, seed=7, engine="sklearn"
        )
        result = run_search(config, engine=SklearnEngine())
        links = {
            k: v.split()[0] for k, v in summary(name, local_stack.env["MLFLOW_TRACKING_URI"], result.parent_run_id)
        }
        trials = mlflow.MlflowClient().search_runs(
            [result.experiment_id], f"tags.mlflow.parentRunId = '{result.parent_run_id}'"
        )
        login = (local_stack.env["MLFLOW_TRACKING_USERNAME"], local_stack.env["MLFLOW_TRACKING_PASSWORD"])
        yield Searched(result, name, links, sorted(t.info.run_name for t in trials), login)


def test_the_runs_link_lists_the_parent_with_its_trials_nested(searched: Searched, browser, tmp_path: Path) -> None:
    b = browser(auth=searched.login)
    b.open(searched.links["trials in the UI"])
    parent = mlflow.MlflowClient().get_run(searched.result.parent_run_id).info.run_name
    b.wait_text(parent)
    kind = mlflow.MlflowClient().get_experiment(searched.result.experiment_id).tags.get(ui_links.EXPERIMENT_KIND_TAG)
    assert kind == ui_links.EXPERIMENT_KIND_TAGS[ui_links.EXPERIMENT_KIND_TAG]  # marked as a training experiment
    assert "Traces" not in b.driver.title and "Runs" in b.driver.title  # the runs view, not the GenAI overview
    shown = b.text()
    assert not any(t in shown for t in searched.trial_names), "trials must be folded under their parent"
    assert searched.result.registered is not None
    row = b.wait(
        "the parent run's row",
        lambda: next(r for r in b.driver.find_elements("css selector", ".ag-row") if parent in r.text),
    )
    expander = row.find_element("css selector", "button[data-component-id*='runnamecellrenderer']")
    expander.click()
    for trial in searched.trial_names:
        b.wait_text(trial)
    b.driver.save_screenshot(str(tmp_path / "ui-runs.png"))  # docs/img/ui-runs.png is this picture


def test_the_parent_run_link_shows_its_plots_as_images(searched: Searched, browser) -> None:
    b = browser(auth=searched.login)
    base, _, query = searched.links["parent run (plots)"].partition("?")
    b.open(f"{base}/artifacts/plots?{query}")  # the run's Artifacts tab, as "-> Artifacts: plots/" says
    for plot in ("search.png", "feature_importances.png"):
        b.click_text(plot)
        b.wait_text(f"plots/{plot}")
        widths = b.wait(
            f"{plot} rendered",
            lambda: [
                b.driver.execute_script("return arguments[0].complete && arguments[0].naturalWidth", img)
                for img in b.driver.find_elements("css selector", "img[src^='blob:']")
            ],
        )
        assert all(w and w > 0 for w in widths), f"{plot} is a broken image: naturalWidth {widths}"


def test_the_model_link_shows_champion_on_the_registered_version(searched: Searched, browser) -> None:
    b = browser(auth=searched.login)
    b.open(searched.links["model in the UI"])
    version = searched.result.registered.version
    b.wait_text(f"Version {version}")
    row = b.wait(
        "the version's row",
        lambda: next(
            r for r in b.driver.find_elements("css selector", "tr, [role=row]") if f"Version {version}" in r.text
        ),
    )
    assert "champion" in row.text, row.text
