"""The objectives and the paired bootstrap: the same values as scikit-learn's metrics, and an interval that
separates a real improvement from noise."""

from __future__ import annotations

import numpy as np
import pytest
from airline_hpo.model import evidence, objectives
from sklearn import metrics

SKLEARN = {
    "log_loss": lambda y, p, w: metrics.log_loss(y, p, sample_weight=w),
    "roc_auc": lambda y, p, w: metrics.roc_auc_score(y, p, sample_weight=w),
    "pr_auc": lambda y, p, w: metrics.average_precision_score(y, p, sample_weight=w),
    "accuracy": lambda y, p, w: metrics.accuracy_score(y, p > 0.5, sample_weight=w),
}


def _rows(n: int = 4000, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    y = (rng.random(n) < 0.2).astype(np.int32)  # 20% positives, like late flights
    p = np.round(np.clip(0.15 + 0.25 * y + rng.normal(0, 0.15, n), 0.01, 0.99), 2)  # rounded: many ties
    return y, p


@pytest.mark.parametrize("name", list(objectives.OBJECTIVES))
def test_each_objective_equals_scikit_learn_with_the_same_weights(name):
    """The vectorized form (a row of weights per bootstrap resample) is scikit-learn's metric, ties included."""
    y, p = _rows()
    weights = np.random.default_rng(1).integers(0, 3, (3, len(y))).astype(float)
    got = objectives.get(name).batch(y, p, weights)
    assert got == pytest.approx([SKLEARN[name](y, p, w) for w in weights], rel=1e-9)
    assert objectives.get(name)(y, p) == pytest.approx(SKLEARN[name](y, p, None), rel=1e-9)


def test_improvement_is_positive_for_the_better_model_whatever_the_direction():
    y, p = _rows()
    worse = np.clip(p + np.random.default_rng(2).normal(0, 0.2, len(p)), 0.01, 0.99)
    for name in objectives.OBJECTIVES:
        objective = objectives.get(name)
        assert objective.improvement(objective(y, p), objective(y, worse)) > 0, name
        assert objective.loss(objective(y, p)) < objective.loss(objective(y, worse)), name


def test_a_clear_improvement_clears_the_margin_and_noise_does_not():
    y, p = _rows()
    rng = np.random.default_rng(3)
    clearly_worse = np.clip(p + rng.normal(0, 0.2, len(p)), 0.01, 0.99)
    gain = evidence.paired_bootstrap(objectives.get("log_loss"), y, p, clearly_worse)
    assert gain.improvement > 0 and gain.clears(0.0)
    assert not gain.clears(gain.high)  # a margin above the whole interval is not cleared
    # the same model with a little jitter: better or worse by chance, the interval straddles zero
    jitter = np.clip(p + rng.normal(0, 0.005, len(p)), 0.01, 0.99)
    noise = evidence.paired_bootstrap(objectives.get("roc_auc"), y, jitter, p)
    assert noise.low < 0 < noise.high and not noise.clears(0.0)
    # seeded: the same inputs give the same interval
    assert evidence.paired_bootstrap(objectives.get("roc_auc"), y, jitter, p) == noise


def test_a_test_score_interval_brackets_it_and_narrows_with_more_rows():
    """A test score is logged with its bootstrap interval: it contains the score, and four times the rows about
    halve its width (the 1/sqrt(n) a user expects), so two test days read as the uncertain figure they are."""
    for name in objectives.OBJECTIVES:
        objective = objectives.get(name)
        y, p = _rows(1000)
        low, high = evidence.interval(objective, y, p)
        assert low < objective(y, p) < high, name
        y4, p4 = _rows(4000)
        low4, high4 = evidence.interval(objective, y4, p4)
        assert 0.35 < (high4 - low4) / (high - low) < 0.7, name
        assert evidence.interval(objective, y, p) == (low, high)  # seeded


def test_unknown_objective_is_one_line():
    with pytest.raises(Exception, match="unknown objective 'f1'; use one of log_loss, roc_auc, pr_auc, accuracy"):
        objectives.get("f1")
