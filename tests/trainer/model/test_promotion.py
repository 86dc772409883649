"""Promotion against champions this trainer did not make: a model registered by the previous trainer (the plain
sklearn flavor, float32 signature, labels only) and a model that cannot take the test rows. Real registry (local
stack), real pyfunc loading."""

from __future__ import annotations

import io
from contextlib import redirect_stdout

import numpy as np
import pandas as pd
import pytest
from airline_hpo import train
from airline_hpo.data import loading as data_mod
from airline_hpo.data import splits
from airline_hpo.errors import run_cli
from airline_hpo.model import promotion, registry
from mlflow import MlflowClient
from mlflow.models import infer_signature
from sklearn.ensemble import RandomForestClassifier
from sklearn.metrics import accuracy_score


def _register_sklearn_champion(name: str, x: pd.DataFrame, y: np.ndarray) -> RandomForestClassifier:
    """What the trainer registered before: mlflow.sklearn with a float32 signature, alias champion."""
    import mlflow.sklearn

    model = RandomForestClassifier(n_estimators=10, max_depth=6, random_state=0).fit(x, y)
    with mlflow.start_run():
        info = mlflow.sklearn.log_model(
            model,
            name="model",
            signature=infer_signature(x.head(5), model.predict(x.head(5))),
            registered_model_name=name,
            skops_trusted_types=registry.SKOPS_TRUSTED_TYPES,
        )
    MlflowClient().set_registered_model_alias(name, "champion", str(info.registered_model_version))
    return model


def _train(fpath, name: str) -> str:
    argv = ["--fpath", str(fpath), "--engine", "sklearn", "--seed", "3", "--model-name", name]
    out = io.StringIO()
    with redirect_stdout(out):
        assert run_cli(train.main, [*argv, "--n-estimators", "10", "--max-depth", "6"]) == 0
    return next(line for line in out.getvalue().splitlines() if line.startswith("promotion:"))


@pytest.mark.integration
def test_an_older_sklearn_champion_is_scored_on_the_same_rows(stack_env, small_airline):
    """The old champion declares float32 columns (pyfunc would refuse float64) and answers labels only: it is
    given the test rows in its own types and compared on accuracy."""
    name = f"{stack_env.experiment}-legacy"
    dataset = data_mod.load_dataset(str(small_airline))
    old_split = splits.make_split(dataset, "random", seed=0, feature_set="all")
    old = _register_sklearn_champion(name, old_split.x_train, old_split.y_train)

    line = _train(small_airline, name)
    new_split = splits.make_split(dataset, "date", seed=3)
    test_rows = dataset.features.iloc[new_split.test_index]
    expected = accuracy_score(new_split.y_test, old.predict(test_rows[list(old.feature_names_in_)]))
    run = MlflowClient().get_run(MlflowClient().get_model_version(name, "2").run_id).data
    assert run.metrics["champion_test_accuracy"] == pytest.approx(expected)
    assert "champion_test_roc_auc" not in run.metrics  # labels only: no probability to rank by
    alias = "champion" if run.metrics["test_accuracy"] > expected else "challenger"
    assert line.startswith(f"promotion: {name} version 2 -> {alias} (test accuracy")


@pytest.mark.integration
def test_a_champion_that_cannot_take_the_rows_keeps_its_alias(stack_env, small_airline):
    name = f"{stack_env.experiment}-alien"
    dataset = data_mod.load_dataset(str(small_airline))
    x = dataset.features.assign(Cancelled=0.0)  # a column our data does not have
    _register_sklearn_champion(name, x, dataset.label)

    line = _train(small_airline, name)
    assert line == (
        f"promotion: {name} version 2 -> challenger (champion version 1 could not be scored on these rows "
        "(it needs column(s) Cancelled); promote=always moves it)"
    )
    assert MlflowClient().get_model_version_by_alias(name, "champion").version == "1"


def test_unknown_promote_mode_is_one_line():
    with pytest.raises(Exception, match="unknown promote 'sometimes'; use one of if_better, always, never"):
        promotion.check_mode("sometimes")
