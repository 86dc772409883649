"""XGBoost beside random forests: a spec with ``model.family: xgboost`` searches, registers a model that answers
label and probability through pyfunc, on the same split, objective and promotion as a forest; the Ray executor
builds and samples the same space; each trial's threads follow ``cpus_per_trial`` and its seed comes from the
search's seed and the trial number."""

from __future__ import annotations

from pathlib import Path

import mlflow.pyfunc
import numpy as np
import pandas as pd
import pytest
import yaml
from airline_hpo.errors import TrainerError
from airline_hpo.model.engines import ForestParams, SklearnEngine, make_engine
from airline_hpo.search import driver, ray_executor
from airline_hpo.search import spec as spec_mod
from airline_hpo.search.trials import trial_cpus, trial_seed, trial_threads
from hyperopt.pyll import stochastic
from mlflow import MlflowClient

SMALL_XGB_SPACE = {"n_estimators": [10, 40], "max_depth": [2, 4]}


def _xgboost_spec(folder: Path, space: dict | None = None) -> Path:
    """The airline spec with the xgboost family (the default space narrowed so a test search takes seconds)."""
    document = yaml.safe_load((spec_mod.PROJECT_DIR / spec_mod.DEFAULT_SPEC).read_text())
    document["model"] = {"family": "xgboost", "space": space or SMALL_XGB_SPACE}
    path = folder / "xgboost.yaml"
    path.write_text(yaml.safe_dump(document))
    return path


def _config(spec: Path, **overrides) -> driver.SearchConfig:
    base = dict(spec=str(spec), fpath="unused.parquet", max_evals=3, seed=7, engine="sklearn")
    return driver.SearchConfig(**{**base, **overrides})


def test_the_xgboost_space_follows_the_spec_and_samples_valid_configurations(tmp_path):
    spec, _ = spec_mod.load(str(_xgboost_spec(tmp_path)))
    config = driver.with_spec(_config(tmp_path / "x.yaml"), spec).validate()
    rng = np.random.default_rng(0)
    for _ in range(100):
        params = ForestParams.from_mapping(stochastic.sample(driver.search_space(config, "sklearn"), rng=rng))
        params.validate()
        assert params.family == "xgboost" and 10 <= params.n_estimators <= 40 and 2 <= params.max_depth <= 4
        assert 0.02 <= params.learning_rate <= 0.3 and 0.5 <= params.subsample <= 1.0
    # trees_max/depth_max bound xgboost too; a forest-only bound is refused in one line
    bounded = driver.with_spec(_config(tmp_path / "x.yaml", trees_max=20, depth_max=3), spec)
    sample = stochastic.sample(driver.search_space(bounded, "sklearn"), rng=rng)
    assert sample["n_estimators"] <= 20 and sample["max_depth"] <= 3
    with pytest.raises(TrainerError, match="leaf_max bound\\(s\\) a random forest"):
        driver.with_spec(_config(tmp_path / "x.yaml", leaf_max=5), spec)


def test_the_ray_executor_builds_and_suggests_the_same_xgboost_space(tmp_path):
    """Ray's side without starting Ray: its driver engine names the family, and Ray's HyperOptSearch over the
    space the driver builds suggests configurations the trial turns into XGBoost parameters."""
    spec, _ = spec_mod.load(str(_xgboost_spec(tmp_path)))
    config = driver.with_spec(_config(tmp_path / "x.yaml", executor="ray"), spec).validate()
    engine = ray_executor.driver_engine(config)
    assert engine.family == "xgboost" and engine.threads == 1  # auto on Ray: one CPU per trial
    space = driver.search_space(config, engine.name)
    in_process = driver.search_space(driver.with_spec(_config(tmp_path / "x.yaml"), spec), "sklearn")
    assert space.keys() == in_process.keys()
    searcher = ray_executor._numbered_searcher(space, config, [])
    for trial in ("a", "b", "c"):
        suggested = searcher.suggest(trial)
        params = ForestParams.from_mapping(suggested).validate()
        assert params.family == "xgboost" and 10 <= params.n_estimators <= 40
        assert engine.logged_params(params)["learning_rate"] == params.learning_rate


def test_each_fit_uses_the_engines_threads():
    """scikit-learn's n_jobs and XGBoost's nthread (n_jobs in its scikit-learn API) are the engine's threads."""
    rng = np.random.default_rng(0)
    x = pd.DataFrame(rng.normal(size=(200, 3)), columns=["a", "b", "c"])
    y = (x["a"] > 0).astype(int).to_numpy()
    engine = SklearnEngine(threads=1, family="xgboost")
    forest = engine.fit(ForestParams(n_estimators=3, max_depth=3), x, y, seed=1)
    boosted = engine.fit(ForestParams(family="xgboost", n_estimators=3, max_depth=3), x, y, seed=1)
    assert forest.n_jobs == 1 and boosted.get_params()["n_jobs"] == 1
    assert boosted.get_params()["random_state"] == 1 and boosted.get_params()["device"] == "cpu"
    assert SklearnEngine().fit(ForestParams(n_estimators=3, max_depth=3), x, y, seed=1).n_jobs == -1
    assert engine.tags()["engine.library"] == "xgboost" and engine.tags()["engine.threads"] == "1"
    assert make_engine("sklearn", 2, "xgboost").threads == 2


@pytest.mark.parametrize(
    ("executor", "cpus", "threads", "reserved"),
    [("inprocess", "auto", None, None), ("inprocess", 2.0, 2, 2.0), ("ray", "auto", 1, 1.0), ("ray", 2.5, 2, 2.5),
     ("ray", 0.5, 1, 0.5)],
)  # fmt: skip
def test_threads_follow_cpus_per_trial(executor, cpus, threads, reserved):
    assert trial_threads(executor, cpus) == threads
    if reserved is not None:
        assert trial_cpus(executor, cpus) == reserved


def test_trial_seeds_come_from_the_search_seed_and_the_trial_number():
    seeds = [trial_seed(42, n) for n in range(1, 50)]
    assert len(set(seeds)) == len(seeds) and all(0 <= s < 2**31 for s in seeds)
    assert seeds == [trial_seed(42, n) for n in range(1, 50)]  # deterministic
    assert trial_seed(43, 1) != trial_seed(42, 1)


@pytest.mark.integration
def test_an_xgboost_search_registers_a_model_answering_label_and_probability(stack_env, small_airline, tmp_path):
    name = f"{stack_env.experiment}-xgb"
    config = _config(_xgboost_spec(tmp_path), fpath=str(small_airline), model_name=name, cpus_per_trial=1.0)
    result = driver.run_search(config)
    client = MlflowClient()

    trials = client.search_runs([result.experiment_id], f"tags.mlflow.parentRunId = '{result.parent_run_id}'")
    assert len(trials) == 3 and all(t.info.status == "FINISHED" for t in trials)
    for trial in trials:
        params, tags = trial.data.params, trial.data.tags
        assert params["family"] == "xgboost" and {"learning_rate", "subsample", "colsample_bytree"} <= set(params)
        assert tags["engine.library"] == "xgboost" and tags["engine.threads"] == "1"
        assert tags["trial.seed"] == str(trial_seed(7, int(tags["trial"])))
        assert trial.data.metrics["loss"] == trial.data.metrics["val_log_loss"]
    parent = client.get_run(result.parent_run_id)
    assert parent.data.params["family"] == "xgboost" and parent.data.tags["model.family"] == "xgboost"
    assert 0.0 < parent.data.metrics["test_roc_auc"] <= 1.0 and parent.data.tags["split.kind"] == "time"

    assert result.registered is not None and result.decision is not None  # promotion decided, as for a forest
    model = mlflow.pyfunc.load_model(f"models:/{name}/{result.registered.version}")
    rows = result.split.x_test.head(20)
    labels = model.predict(rows)
    probability = model.predict(rows, params={"output": "probability"})
    both = model.predict(rows, params={"output": "both"})
    assert set(np.unique(labels)) <= {0, 1} and ((probability >= 0) & (probability <= 1)).all()
    # the label follows the decision threshold the search chose on validation and logged, as for a forest
    threshold = parent.data.metrics["threshold"]
    np.testing.assert_array_equal(labels, (probability >= threshold).astype(int))
    np.testing.assert_allclose(both["probability"], probability)
    # the registered model is the refitted one: its test score is what the parent logged
    refit = result.test
    assert refit is not None and parent.data.metrics["test_log_loss"] == pytest.approx(refit.log_loss)


def test_the_family_benchmark_prints_fit_times_of_both_families(small_airline, capsys):
    from benchmarks import family_fit

    assert family_fit.main(["--fpath", str(small_airline), "--trials", "2", "--threads", "1"]) == 0
    table = capsys.readouterr().out
    lines = [
        line.split() for line in table.splitlines() if line.startswith(("random_forest", "xgb")) and "/" not in line
    ]
    rows = {row[0]: row for row in lines}
    assert set(rows) == {"random_forest", "xgboost"}
    assert all(float(row[1].rstrip("s")) > 0 for row in rows.values())
    assert "random_forest / xgboost mean fit time:" in table


def test_the_shipped_xgboost_spec_asks_the_same_question_as_the_airline_spec():
    forest, _ = spec_mod.load(spec_mod.DEFAULT_SPEC)
    boosted, _ = spec_mod.load("specs/airline-xgboost.yaml")
    assert boosted.family == "xgboost" and boosted.space == spec_mod.DEFAULT_SPACES["xgboost"]
    assert (boosted.table, boosted.split, boosted.objective) == (forest.table, forest.split, forest.objective)


def test_a_share_above_one_in_the_xgboost_space_is_one_line(tmp_path):
    with pytest.raises(TrainerError, match=r"model\.space\.subsample is a share, at most 1"):
        spec_mod.load(str(_xgboost_spec(tmp_path, {"subsample": [0.5, 1.5]})))
