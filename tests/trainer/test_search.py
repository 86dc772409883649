"""The search: loss sign, space, nesting, plots, registration and alias, seed reproducibility, failed trials.

Integration tests run real searches against the session's local stack (PostgreSQL backend, S3 artifacts through
MLflow's proxy), kept small (3,000 flights, a few shallow forests) so they take seconds on 2 cores.
"""

from __future__ import annotations

import numpy as np
import pytest
from airline_hpo import data as data_mod
from airline_hpo import search
from airline_hpo.engines import ForestParams, SklearnEngine
from airline_hpo.errors import TrainerError, run_cli
from airline_hpo.search import SearchConfig, best_outcome, run_search, search_space, suggest_algorithm
from airline_hpo.trials import InProcessTrialRunner, TrialOutcome, TrialSpec, loss_from_accuracy
from hyperopt.pyll import stochastic
from mlflow import MlflowClient
from mlflow.exceptions import MlflowException

SMALL = dict(max_evals=4, trees_max=12, depth_max=6, seed=7, test_size=0.25, engine="sklearn")


def test_loss_decreases_as_accuracy_grows():
    assert loss_from_accuracy(0.9) < loss_from_accuracy(0.6)
    assert loss_from_accuracy(1.0) == 0.0


def test_space_bounds_and_integer_types():
    config = SearchConfig(fpath="x", trees_max=50, depth_max=9)
    rng = np.random.default_rng(0)
    samples = [stochastic.sample(search_space(config, "sklearn"), rng=rng) for _ in range(200)]
    assert {"n_estimators", "max_depth", "max_features"} == set(samples[0])
    for s in samples:
        assert isinstance(s["n_estimators"], int) and 10 <= s["n_estimators"] <= 50 and s["n_estimators"] % 10 == 0
        assert isinstance(s["max_depth"], int) and 3 <= s["max_depth"] <= 9
        assert 0.2 <= s["max_features"] <= 1.0
    assert "n_bins" in search_space(config, "cuml")
    tiny = stochastic.sample(search_space(SearchConfig(fpath="x", trees_max=5, depth_max=2), "sklearn"), rng=rng)
    assert (tiny["n_estimators"], tiny["max_depth"]) == (5, 2)  # bounds that meet are a fixed value


def test_tpe_startup_scales_with_budget():
    assert suggest_algorithm("tpe", 8).keywords["n_startup_jobs"] == 3
    assert suggest_algorithm("tpe", 40).keywords["n_startup_jobs"] == 10
    assert suggest_algorithm("tpe", 500).keywords["n_startup_jobs"] == 20


def test_best_outcome_is_lowest_loss_and_skips_failures():
    p = ForestParams()
    outcomes = [
        TrialOutcome(1, p, "a", ok=True, accuracy=0.70),
        TrialOutcome(2, p, "b", ok=False, error="boom"),
        TrialOutcome(3, p, "c", ok=True, accuracy=0.75),
        TrialOutcome(4, p, "d", ok=True, accuracy=0.75),
    ]
    assert best_outcome(outcomes).run_id == "c"
    assert best_outcome(outcomes[1:2]) is None


@pytest.mark.parametrize(
    ("change", "words"),
    [({"max_evals": 0}, "max_evals must be at least 1"), ({"algo": "grid"}, "unknown algo")],
)
def test_config_validation(change, words):
    with pytest.raises(TrainerError, match=words):
        SearchConfig(fpath="x", **change).validate()


# --------------------------------------------------------------------------------------------- integration


def _config(fpath, model_name, **overrides) -> SearchConfig:
    return SearchConfig(fpath=str(fpath), model_name=model_name, **{**SMALL, **overrides})


@pytest.fixture(scope="module")
def two_searches(module_stack_env, small_airline):
    """Two searches with the same seed under one model name (the second must move the alias)."""
    name = f"{module_stack_env.experiment}-model"
    data_mod.clear_cache()
    first = run_search(_config(small_airline, name), engine=SklearnEngine())
    second = run_search(_config(small_airline, name), engine=SklearnEngine())
    return module_stack_env, name, first, second


@pytest.mark.integration
def test_search_end_to_end(two_searches):
    first = two_searches[2]
    client = MlflowClient()

    # nesting: one nested run per trial under the parent, with params and metrics, and no model artifact
    trials = client.search_runs([first.experiment_id], f"tags.mlflow.parentRunId = '{first.parent_run_id}'")
    assert len(trials) == 4 and all(t.info.status == "FINISHED" for t in trials)
    for trial in trials:
        assert {"n_estimators", "max_depth", "max_features"} <= set(trial.data.params)
        assert {"accuracy", "roc_auc", "loss", "fit_seconds", "predict_seconds"} <= set(trial.data.metrics)
        assert trial.data.metrics["loss"] == pytest.approx(1 - trial.data.metrics["accuracy"])
        assert trial.data.tags["engine"] == "sklearn" and trial.data.tags["engine.version"]
        assert client.list_artifacts(trial.info.run_id) == []

    # the parent: best params and score, baseline, plots, tags
    parent = client.get_run(first.parent_run_id)
    accuracies = [t.data.metrics["accuracy"] for t in trials]
    assert parent.data.metrics["best_accuracy"] == pytest.approx(max(accuracies))
    assert parent.data.metrics["baseline_accuracy"] == pytest.approx(first.baseline_accuracy)
    assert parent.data.params["best_max_depth"] == str(first.best.params.max_depth)
    assert parent.data.tags["engine"] == "sklearn" and parent.data.tags["device"].startswith("cpu")
    plots = {a.path for a in client.list_artifacts(first.parent_run_id, "plots")}
    assert plots == {"plots/search.png", "plots/feature_importances.png"}
    # the model is logged once per search, by the parent (MLflow 3 keeps it as a LoggedModel of the run)
    models = client.search_logged_models([first.experiment_id])
    sources = sorted(m.source_run_id for m in models)
    assert sources == sorted([first.parent_run_id, two_searches[3].parent_run_id])

    # hyperopt minimized 1 - accuracy: its best trial is the most accurate one (the seed found the worst)
    best_result = first.trials.best_trial["result"]
    assert best_result["accuracy"] == pytest.approx(max(accuracies))
    assert best_result["loss"] == pytest.approx(min(t.data.metrics["loss"] for t in trials))


@pytest.mark.integration
def test_registration_and_alias_move(two_searches):
    _, name, first, second = two_searches
    client = MlflowClient()
    assert (first.registered.version, second.registered.version) == ("1", "2")
    champion = client.get_model_version_by_alias(name, "champion")
    assert champion.version == "2" and champion.run_id == second.parent_run_id
    assert client.get_model_version(name, "1").aliases == []

    import mlflow.pyfunc

    model = mlflow.pyfunc.load_model(f"models:/{name}@champion")
    example = data_mod.load_dataset(first.trials.best_trial and _fpath(first)).features.head(3)
    assert set(model.predict(example).tolist()) <= {0, 1}
    assert model.metadata.get_input_schema().input_names() == list(example.columns)


def _fpath(result) -> str:
    return MlflowClient().get_run(result.parent_run_id).data.params["fpath"]


@pytest.mark.integration
def test_fixed_seed_reproduces_trials(two_searches):
    _, _, first, second = two_searches

    def trace(result):
        return [(o.params, round(o.accuracy, 10)) for o in result.outcomes]

    assert trace(first) == trace(second)
    assert len({o.params for o in first.outcomes}) > 1  # it did explore


@pytest.mark.integration
def test_better_model_has_lower_loss(stack_env, small_airline):
    """The objective's sign on real models: a deeper, larger forest beats a one-split stump, and its loss is
    lower, so hyperopt (which minimizes) moves towards it."""
    import mlflow

    split = data_mod.split(data_mod.load_dataset(str(small_airline)), 0.25, seed=0)
    with mlflow.start_run() as parent:
        runner = InProcessTrialRunner(SklearnEngine(), split, 0, parent.info.experiment_id, parent.info.run_id)
        stump = runner.run(TrialSpec(1, ForestParams(n_estimators=1, max_depth=1, max_features=0.2)))
        forest = runner.run(TrialSpec(2, ForestParams(n_estimators=40, max_depth=10, max_features=0.8)))
        runner.flush()
    assert forest.accuracy > stump.accuracy
    assert forest.loss < stump.loss
    assert 0.0 <= forest.overhead_share < 1.0 and forest.fit_seconds > 0


class FlakyEngine(SklearnEngine):
    """Fails the fits whose number is in ``fail_on`` (1-based), like a trial hitting a bad configuration."""

    def __init__(self, fail_on: set[int]) -> None:
        self.fail_on, self.calls = fail_on, 0

    def fit(self, params, x, y, seed):
        self.calls += 1
        if self.calls in self.fail_on:
            raise RuntimeError(f"simulated failure in fit {self.calls}")
        return super().fit(params, x, y, seed)


@pytest.mark.integration
def test_failed_trial_is_recorded_and_search_continues(stack_env, small_airline):
    result = run_search(_config(small_airline, ""), engine=FlakyEngine({2}))
    assert [o.ok for o in result.outcomes] == [True, False, True, True]
    client = MlflowClient()
    failed = client.get_run(result.outcomes[1].run_id)
    assert failed.info.status == "FAILED" and "simulated failure" in failed.data.tags["error"]
    assert {"n_estimators", "max_depth"} <= set(failed.data.params)
    parent = client.get_run(result.parent_run_id)
    assert parent.info.status == "FINISHED" and parent.data.metrics["trials_failed"] == 1
    assert result.registered is None  # model_name "" logs the model but registers nothing


@pytest.mark.integration
def test_no_successful_trial_fails_the_run(stack_env, small_airline, monkeypatch, capsys):
    with pytest.raises(TrainerError) as caught:
        run_search(_config(small_airline, "never", max_evals=2), engine=FlakyEngine({1, 2}))
    assert caught.value.exit_code == 1 and "no trial succeeded" in str(caught.value)
    client = MlflowClient()
    experiment = client.get_experiment_by_name(stack_env.experiment)
    parents = client.search_runs([experiment.experiment_id], "attributes.run_name LIKE 'hyperopt-%'")
    assert [p.info.status for p in parents] == ["FAILED"]

    # and the CLI turns it into a non-zero exit with one line
    monkeypatch.setattr(search, "make_engine", lambda _name: FlakyEngine({1, 2, 3}))
    argv = ["--fpath", str(small_airline), "--max-evals", "3", "--trees-max", "5", "--engine", "sklearn"]
    capsys.readouterr()
    assert run_cli(search.main, argv) == 1
    assert _error_lines(capsys.readouterr().err)[0].startswith("error: no trial succeeded (3 failed")


def _error_lines(stderr: str) -> list[str]:
    """The error lines of a CLI's stderr (the progress bar writes there too); exactly one, no traceback."""
    assert "Traceback" not in stderr
    lines = [line for line in stderr.replace("\r", "\n").splitlines() if line.startswith("error:")]
    assert len(lines) == 1, stderr
    return lines


@pytest.mark.integration
def test_failed_registration_exits_non_zero(stack_env, small_airline, monkeypatch, capsys):
    def refuse(*_args, **_kwargs):
        raise MlflowException("registry unavailable")

    monkeypatch.setattr(MlflowClient, "set_registered_model_alias", refuse)
    argv = ["--fpath", str(small_airline), "--max-evals", "1", "--trees-max", "5", "--depth-max", "3"]
    assert run_cli(search.main, [*argv, "--engine", "sklearn", "--model-name", "refused"]) == 1
    [line] = _error_lines(capsys.readouterr().err)
    assert line.startswith("error: logging or registering the model 'refused' failed: registry unavailable")


@pytest.mark.integration
def test_train_entry_point_logs_and_registers_one_configuration(stack_env, small_airline, capsys):
    from airline_hpo import train

    name = f"{stack_env.experiment}-single"
    argv = ["--fpath", str(small_airline), "--n-estimators", "8", "--max-depth", "5", "--engine", "sklearn"]
    assert run_cli(train.main, [*argv, "--model-name", name]) == 0
    assert "accuracy" in capsys.readouterr().out
    version = MlflowClient().get_model_version_by_alias(name, "champion")
    run = MlflowClient().get_run(version.run_id)
    assert run.data.params["n_estimators"] == "8" and run.data.params["max_depth"] == "5"
    assert {"accuracy", "roc_auc", "baseline_accuracy", "fit_seconds"} <= set(run.data.metrics)
