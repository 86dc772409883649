"""The decision threshold: F1's and a cost ratio's pick on validation probabilities, against a brute force over
every candidate with scikit-learn's own metrics (its curves count every distinct probability as a threshold in one
call, where a ``f1_score`` per candidate took 40 s for 4,000 rows)."""

from __future__ import annotations

import numpy as np
import pytest
from airline_hpo.model.threshold import ThresholdRule, counts
from sklearn.metrics import confusion_matrix, f1_score, precision_recall_curve, roc_curve


@pytest.fixture
def imbalanced() -> tuple[np.ndarray, np.ndarray]:
    """16% positives (the airline's late share) with probabilities that rank them better than chance."""
    rng = np.random.default_rng(3)
    y = (rng.random(4000) < 0.16).astype(np.int64)
    p = np.clip(0.16 + 0.12 * (y - 0.16) + rng.normal(0, 0.08, len(y)), 0, 1)
    return y, p


def test_f1_picks_the_threshold_with_the_highest_f1(imbalanced):
    y, p = imbalanced
    chosen = ThresholdRule("f1").choose(y, p)
    precision, recall, _ = precision_recall_curve(y, p, drop_intermediate=False)
    with np.errstate(invalid="ignore", divide="ignore"):
        best = np.nanmax(2 * precision * recall / (precision + recall))  # F1 at every distinct probability
    assert f1_score(y, (p >= chosen).astype(int)) == pytest.approx(best)
    assert chosen < 0.5  # with 16% positives almost nothing reaches 0.5: a 0.5 label would find few of them
    assert counts(y, p, chosen)["f1"] == pytest.approx(best)


def test_cost_picks_the_cheapest_threshold_and_a_dearer_miss_lowers_it(imbalanced):
    y, p = imbalanced

    def cost(t: float, fp: float, fn: float) -> float:
        _, false_positive, false_negative, _ = confusion_matrix(y, (p >= t).astype(int)).ravel()
        return fp * false_positive + fn * false_negative

    def cheapest(fp: float, fn: float) -> float:
        """The lowest cost over every distinct probability, from scikit-learn's ROC counts (rates times class
        sizes: false positives, and the positives not yet found)."""
        fpr, tpr, _ = roc_curve(y, p, drop_intermediate=False)
        negatives, positives = int((y == 0).sum()), int((y == 1).sum())
        return float(np.min(fp * fpr * negatives + fn * (1 - tpr) * positives))

    even = ThresholdRule("cost", 1, 1).choose(y, p)
    dear_miss = ThresholdRule("cost", 1, 5).choose(y, p)
    assert cost(dear_miss, 1, 5) == pytest.approx(cheapest(1, 5))
    assert cost(even, 1, 1) == pytest.approx(cheapest(1, 1))
    assert dear_miss < even  # missing a late flight costs more: answer "late" sooner


@pytest.mark.integration
def test_served_label_uses_the_logged_threshold_and_older_models_keep_half(stack_env, small_airline):
    """The pyfunc's label is probability >= its config's threshold; a model logged without one (before the
    threshold existed) keeps probability > 0.5, and output=probability/both work for both."""
    import mlflow
    import mlflow.pyfunc
    from airline_hpo import serve_check
    from airline_hpo.data import loading as data_mod
    from airline_hpo.model import registry
    from sklearn.ensemble import RandomForestClassifier

    dataset = data_mod.load_dataset(str(small_airline))
    x = dataset.features.head(600)
    forest = RandomForestClassifier(n_estimators=5, max_depth=4, random_state=0).fit(x, dataset.label[:600])
    with mlflow.start_run():
        old = registry.log_model(forest, x.head(5), "none")
        new = registry.log_model(forest, x.head(5), "none", threshold=0.2)
    assert (serve_check.model_threshold(old.model_uri), serve_check.model_threshold(new.model_uri)) == (None, 0.2)
    rows = x.head(200).astype("float64")
    for uri, expected in ((old.model_uri, lambda p: p > 0.5), (new.model_uri, lambda p: p >= 0.2)):
        model = mlflow.pyfunc.load_model(uri)
        probability = np.asarray(model.predict(rows, params={"output": "probability"}))
        np.testing.assert_array_equal(model.predict(rows), expected(probability).astype(int))
        both = model.predict(rows, params={"output": "both"})
        np.testing.assert_array_equal(both["label"], expected(both["probability"]).astype(int))
