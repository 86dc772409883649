"""Promotion on evidence, through the ``train`` entry point against the real local stack: a model that reads
post-landing columns never takes ``champion``, a model answering another question (other test rows, features
or target) stays ``challenger`` as "not comparable", and so does one whose gain is within the noise; an older
champion that recorded no question is not comparable either. Real registry, real pyfunc loading."""

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

STUMP = ("--n-estimators", "1", "--max-depth", "1", "--max-features", "0.2")
FOREST = ("--n-estimators", "30", "--max-depth", "8")
#: On the 3,000-flight sample: higher test accuracy than FOREST (the old rule's strict ``>`` promoted it), and a
#: log-loss gain of +0.0007 whose 95% interval spans -0.0016 to +0.0029.
FOREST_28 = ("--n-estimators", "28", "--max-depth", "8")


def _train(fpath, name: str, *extra: str) -> str:
    # split=date: the figures below are for whole days drawn with seed 3 (the default, split=time, is tested apart)
    argv = ["--fpath", str(fpath), "--engine", "sklearn", "--seed", "3", "--split", "date", "--model-name", name]
    argv += extra
    out = io.StringIO()
    with redirect_stdout(out):
        assert run_cli(train.main, argv) == 0
    return next(line for line in out.getvalue().splitlines() if line.startswith("promotion:"))


def _champion(name: str) -> str:
    return MlflowClient().get_model_version_by_alias(name, "champion").version


def _run(name: str, version: str):
    client = MlflowClient()
    return client.get_run(client.get_model_version(name, version).run_id).data


@pytest.mark.integration
def test_a_post_landing_model_never_takes_champion(stack_env, small_airline):
    """``features=all`` reads ActualElapsedTime and Diverted, unknown before departure: not with no champion,
    not when it scores far better, not with promote=always."""
    name = f"{stack_env.experiment}-leak"
    never = "never champion: it reads ActualElapsedTime, not known at decision time"
    assert _train(small_airline, name, *FOREST, "--features", "all") == (
        f"promotion: {name} version 1 -> challenger ({never} (train without them))"
    )
    assert _train(small_airline, name, *STUMP).endswith("version 2 -> champion (no champion yet)")
    for promote in ("if_better", "always"):
        line = _train(small_airline, name, *FOREST, "--features", "all", "--promote", promote)
        assert "-> challenger (never champion" in line, line
    assert _champion(name) == "2"
    # Diverted is constant in this sample, so it was dropped
    assert _run(name, "1").tags["question.unknown_at_decision"] == "ActualElapsedTime"


@pytest.mark.integration
def test_a_model_that_answers_another_question_stays_challenger(stack_env, small_airline):
    """A champion tested on other rows (another split) is not comparable, however much better the new one
    looks; promote=always still moves the alias on purpose."""
    name = f"{stack_env.experiment}-other"
    assert _train(small_airline, name, *STUMP, "--split", "random").endswith("-> champion (no champion yet)")
    line = _train(small_airline, name, *FOREST)
    assert line == (
        f"promotion: {name} version 2 -> challenger (not comparable with champion version 1: other test rows "
        "(random test_size=0.2 val_size=0.2 seed=3 vs date test_size=0.2 val_size=0.2 seed=3); "
        "promote=always moves it)"
    )
    assert _champion(name) == "1"
    assert "champion_test_log_loss" not in _run(name, "2").metrics  # nothing compared on rows it may have seen
    line = _train(small_airline, name, *FOREST, "--promote", "always")
    assert line.startswith(f"promotion: {name} version 3 -> champion (promote=always; not comparable")
    assert _champion(name) == "3"


@pytest.mark.integration
def test_a_gain_within_the_noise_stays_challenger_and_a_clear_one_promotes(stack_env, small_airline):
    name = f"{stack_env.experiment}-noise"
    assert _train(small_airline, name, *STUMP).endswith("-> champion (no champion yet)")
    line = _train(small_airline, name, *FOREST)
    assert "version 2 -> champion (log_loss 0.6353 vs champion version 1's 0.6578 on the same 595 rows" in line
    assert "its lower bound clears the margin 0" in line
    assert _champion(name) == "2"

    line = _train(small_airline, name, *FOREST_28)
    assert line.startswith(f"promotion: {name} version 3 -> challenger (log_loss 0.6346 vs champion version 2's")
    assert line.endswith("does not clear the margin 0 (better, but within the noise))")
    assert _champion(name) == "2"
    run = _run(name, "3")
    # both scores, on the same rows, and the interval, logged on the new version's run
    assert run.metrics["champion_test_log_loss"] == pytest.approx(_run(name, "2").metrics["test_log_loss"])
    assert run.metrics["test_log_loss"] < run.metrics["champion_test_log_loss"]
    assert run.metrics["test_accuracy"] > run.metrics["champion_test_accuracy"]  # the old rule's promotion
    low, high = run.metrics["promotion_improvement_low"], run.metrics["promotion_improvement_high"]
    assert low < 0 < run.metrics["promotion_improvement"] < high
    assert run.params["objective"] == "log_loss" and float(run.params["promote_margin"]) == 0

    # a margin is a bar the lower bound must clear: the forest's clear gain over a stump does not clear 0.05
    line = _train(small_airline, name, *STUMP, "--promote-margin", "0.05")
    assert "-> challenger" in line and "does not clear the margin 0.05" in line


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


@pytest.mark.integration
def test_an_older_champion_without_a_question_is_not_comparable(stack_env, small_airline):
    """Registered by the previous trainer (plain sklearn flavor, labels only, no ``question.*`` tags): nothing
    says which rows it was tested on or which features it reads, so it keeps its alias until a user moves it."""
    name = f"{stack_env.experiment}-legacy"
    dataset = data_mod.load_dataset(str(small_airline))
    old_split = splits.make_split(dataset, "random", seed=0, feature_set="all")
    _register_sklearn_champion(name, old_split.x_train, old_split.y_train)

    assert _train(small_airline, name, *FOREST) == (
        f"promotion: {name} version 2 -> challenger (not comparable with champion version 1: it records no target, "
        "features or test rows (registered before promotion compared them); promote=always moves it)"
    )
    assert _champion(name) == "1"
    assert _train(small_airline, name, *FOREST, "--promote", "always").endswith("-> champion (promote=always; "
        "not comparable with champion version 1: it records no target, features or test rows (registered before "
        "promotion compared them))")  # fmt: skip
    assert _champion(name) == "3"


def test_unknown_promote_mode_and_negative_margin_are_one_line():
    with pytest.raises(Exception, match="unknown promote 'sometimes'; use one of if_better, always, never"):
        promotion.check_mode("sometimes")
    with pytest.raises(Exception, match="promote_margin must be 0 or positive"):
        promotion.check_margin(-0.1)
