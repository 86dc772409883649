"""The refit that follows every search: the best configuration fitted on train+validation, scored once on test.

Shared by both executors (in process and on Ray, where it runs as a task with a trial's resources) and by the
``train`` entry point, so one configuration is scored the same way wherever it was found.
"""

from __future__ import annotations

import time
from typing import Any

import numpy as np
import pandas as pd

from airline_hpo.data import splits
from airline_hpo.data.loading import Dataset
from airline_hpo.model import promotion, registry
from airline_hpo.model.engines import Engine, ForestParams
from airline_hpo.model.threshold import ThresholdRule, counts


def to_pandas(frame: Any) -> pd.DataFrame:
    """Host copy of a frame (the loader may hand cuDF frames on a GPU); pandas frames pass unchanged."""
    return frame.to_pandas() if hasattr(frame, "to_pandas") else frame


def refit_and_test(
    engine: Engine, params: ForestParams, split: splits.Split, seed: int
) -> tuple[Any, Any, promotion.Score, float]:
    """Fit ``params`` on train+validation and score the model that will be registered (the scikit-learn one,
    through ``predict_proba`` on float32 as the served model does) on the test rows. Returns the engine's model
    (for feature importances), the scikit-learn model, its test score and the refit seconds."""
    x, y = engine.to_device(split.x_fit, split.y_fit)
    started = time.perf_counter()
    model = engine.fit(params, x, y, seed)
    refit_seconds = time.perf_counter() - started
    sk_model = engine.to_sklearn(model)
    x_test = to_pandas(split.x_test).astype(np.float32)
    test = promotion.score(sk_model.predict_proba(x_test)[:, 1], split.y_test, with_intervals=True)
    return model, sk_model, test, refit_seconds


def question(dataset: Dataset, split: splits.Split, seed: int, test_size: float, val_size: float) -> promotion.Question:
    """What the refitted model answers, on which test rows (every column of the data, so a champion reading
    other columns is scored on the same rows): how promotion tells comparable models apart."""
    rows = to_pandas(dataset.features).iloc[split.test_index]
    seeded = "" if split.kind == "time" else f" seed={seed}"
    description = f"{split.kind} test_size={test_size:g} val_size={val_size:g}{seeded}"
    return promotion.Question.of(dataset.target, split, rows, description)


def fit_on_train(engine: Engine, params: ForestParams, split: splits.Split, seed: int) -> Any:
    """``params`` fitted on train only, as a trial was, as a scikit-learn model: what the threshold and the
    permutation importance are measured with on the validation part (the refit on train+validation would
    score its own training rows there)."""
    x, y = engine.to_device(split.x_train, split.y_train)
    return engine.to_sklearn(engine.fit(params, x, y, seed))


def choose_threshold(sk_model: Any, split: splits.Split, rule: ThresholdRule) -> tuple[float, dict[str, float]]:
    """The served label's threshold: ``sk_model``'s (:func:`fit_on_train`) probabilities on the validation part
    (float32, as served) and ``rule``'s pick among them (:mod:`airline_hpo.model.threshold`). Returns the
    threshold and its validation precision, recall and F1."""
    probability = sk_model.predict_proba(to_pandas(split.x_val).astype(np.float32))[:, 1]
    chosen = rule.choose(split.y_val, probability)
    return chosen, counts(split.y_val, probability, chosen)


def log_threshold(
    rule: ThresholdRule, chosen: float, on_validation: dict[str, float], test_probability: np.ndarray, y_test: Any
) -> None:
    """The rule (params ``threshold_rule``, costs), the threshold (metric ``threshold``) and what the served
    label does with it: ``val_precision``/``val_recall``/``val_f1`` and the same on the test rows."""
    import mlflow

    registry.log_params_once(rule.params())
    at_test = counts(y_test, test_probability, chosen)
    mlflow.log_metrics(
        {
            "threshold": chosen,
            **{f"val_{k}": v for k, v in on_validation.items()},
            **{f"test_{k}": v for k, v in at_test.items()},
        }
    )


def threshold_on_validation(
    engine: Engine, params: ForestParams, split: splits.Split, seed: int, rule: ThresholdRule, sk_model: Any
) -> tuple[float, Any]:
    """Fit ``params`` on train (:func:`fit_on_train`), choose the threshold on validation with ``rule`` and log
    it with what the refitted ``sk_model``'s label does at it on the test rows. Returns the threshold and the
    train-only model (for anything else measured on the validation part)."""
    on_train = fit_on_train(engine, params, split, seed)
    chosen, on_validation = choose_threshold(on_train, split, rule)
    test_probability = sk_model.predict_proba(to_pandas(split.x_test).astype(np.float32))[:, 1]
    log_threshold(rule, chosen, on_validation, test_probability, split.y_test)
    return chosen, on_train
