"""The decision threshold: where the served model's ``label`` turns from 0 to 1 (``probability >= threshold``).

A fixed 0.5 answers "late" only when a flight is more likely late than not; with 16% late flights that finds few
of them (issue 15: 883 of 5,488 on the test days). The threshold is chosen on the validation part (rows no
refit saw as validation, none of the test rows) by a rule the spec names:

- ``f1`` (default): the threshold with the highest F1 of the positive class (precision and recall balanced);
- ``cost``: the threshold with the lowest total cost ``false_positive * FP + false_negative * FN`` (e.g. a missed
  late flight costs 5, a false alarm 1).

Candidates are the validation probabilities themselves (scikit-learn's ``precision_recall_curve`` thresholds),
so the chosen threshold reproduces the validation counts exactly.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

RULES = ("f1", "cost")


@dataclass(frozen=True)
class ThresholdRule:
    rule: str = "f1"
    #: Costs of a false alarm and of a missed positive (``cost`` only)
    false_positive: float = 1.0
    false_negative: float = 1.0

    @property
    def content(self) -> dict[str, Any]:
        if self.rule == "cost":
            return {"rule": self.rule, "false_positive": self.false_positive, "false_negative": self.false_negative}
        return {"rule": self.rule}

    def params(self) -> dict[str, str]:
        """What the run logs as params (``threshold_rule``, and the costs for ``cost``)."""
        return {f"threshold_{k}": str(v) for k, v in self.content.items()}

    def choose(self, y: np.ndarray, probability: np.ndarray) -> float:
        """The threshold this rule picks for labels ``y`` and probabilities ``probability``."""
        from sklearn.metrics import precision_recall_curve

        y = np.asarray(y).astype(np.int64)
        p = np.asarray(probability, dtype=np.float64)
        precision, recall, thresholds = precision_recall_curve(y, p)
        precision, recall = precision[:-1], recall[:-1]  # the last point has no threshold
        if self.rule == "f1":
            with np.errstate(invalid="ignore", divide="ignore"):
                f1 = np.nan_to_num(2 * precision * recall / (precision + recall))
            return float(thresholds[int(np.argmax(f1))])
        positives = int(y.sum())
        true_positive = recall * positives
        predicted = np.divide(true_positive, precision, out=np.zeros_like(true_positive), where=precision > 0)
        false_positive = predicted - true_positive
        false_negative = positives - true_positive
        cost = self.false_positive * false_positive + self.false_negative * false_negative
        return float(thresholds[int(np.argmin(np.round(cost, 6)))])


def counts(y: np.ndarray, probability: np.ndarray, threshold: float) -> dict[str, float]:
    """Precision, recall and F1 of ``probability >= threshold`` (what the served label says) on labels ``y``."""
    from sklearn.metrics import f1_score, precision_score, recall_score

    label = (np.asarray(probability) >= threshold).astype(np.int64)
    return {
        "precision": float(precision_score(y, label, zero_division=0)),
        "recall": float(recall_score(y, label, zero_division=0)),
        "f1": float(f1_score(y, label, zero_division=0)),
    }


def parse(value: Any, fail: Any) -> ThresholdRule:
    """The spec's ``threshold`` (absent: f1); ``fail(key, problem, fix)`` builds the one-line error."""
    if value is None:
        return ThresholdRule()
    example = "e.g. threshold: {rule: cost, false_positive: 1, false_negative: 5}"
    if not isinstance(value, dict):
        raise fail("threshold", f"must be a mapping (got {value!r})", "e.g. threshold: {rule: f1}")
    allowed = {"rule", "false_positive", "false_negative"}
    unknown = sorted(set(value) - allowed)
    if unknown:
        raise fail(f"threshold.{unknown[0]}", "is not a known key", f"use {', '.join(sorted(allowed))}")
    rule = value.get("rule", "f1")
    if rule not in RULES:
        raise fail("threshold.rule", f"is {rule!r}", f"use one of {', '.join(RULES)}")
    if rule == "f1":
        extra = sorted(set(value) - {"rule"})
        if extra:
            raise fail(f"threshold.{extra[0]}", "applies to rule: cost only", "remove it, or rule: cost")
        return ThresholdRule()
    costs = {}
    for key in ("false_positive", "false_negative"):
        cost = value.get(key)
        if isinstance(cost, bool) or not isinstance(cost, (int, float)) or not 0 < cost < float("inf"):
            raise fail(f"threshold.{key}", f"must be a positive number (got {cost!r})", example)
        costs[key] = float(cost)
    return ThresholdRule("cost", **costs)
