"""The objectives a search minimizes and a promotion compares: one definition each, with its direction.

``log_loss`` is the default: it scores the probabilities the served model returns, so it separates trials where
accuracy at a 0.5 threshold cannot (with 16% late flights, 3 of 8 trials tied or fell below the majority
baseline on accuracy while their ROC AUC ranged 0.62-0.76: design notes §3c). ``roc_auc`` and ``pr_auc`` rank
rows, ``accuracy`` counts ``probability > 0.5``.

Each objective is computed for many row weightings at once (``batch``: one row of weights per bootstrap
resample; :mod:`airline_hpo.model.evidence`), which is what makes a 1,000-resample paired bootstrap on 30,000
rows take a second instead of a minute of scikit-learn calls. With unit weights each equals scikit-learn's
``log_loss``, ``accuracy_score``, ``roc_auc_score`` and ``average_precision_score`` with ``sample_weight``
(tests/trainer/model/test_objectives.py checks this).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np

from airline_hpo.errors import TrainerError

#: ``batch(y, probability, weights)`` -> one value per row of ``weights`` (shape resamples x rows).
Batch = Callable[[np.ndarray, np.ndarray, np.ndarray], np.ndarray]


@dataclass(frozen=True)
class Objective:
    name: str
    batch: Batch
    higher_is_better: bool

    def __call__(self, y: np.ndarray, probability: np.ndarray) -> float:
        y, p = np.asarray(y), np.asarray(probability, dtype=np.float64)
        return float(self.batch(y, p, np.ones((1, len(y))))[0])

    def loss(self, value: float) -> float:
        """What hyperopt minimizes: the value itself, or its negation when higher is better."""
        return -value if self.higher_is_better else value

    def from_loss(self, loss: float) -> float:
        """The objective's value behind a loss (:meth:`loss` undone)."""
        return -loss if self.higher_is_better else loss

    def improvement(self, new: Any, old: Any) -> Any:
        """How much better ``new`` is than ``old`` (positive = better), whatever the direction."""
        return new - old if self.higher_is_better else old - new


def _weighted_mean(per_row: np.ndarray, weights: np.ndarray) -> np.ndarray:
    return weights @ per_row / weights.sum(axis=1)


def _log_loss(y: np.ndarray, p: np.ndarray, weights: np.ndarray) -> np.ndarray:
    p = np.clip(p, 1e-15, 1 - 1e-15)
    return _weighted_mean(-(y * np.log(p) + (1 - y) * np.log1p(-p)), weights)


def _accuracy(y: np.ndarray, p: np.ndarray, weights: np.ndarray) -> np.ndarray:
    return _weighted_mean(((p > 0.5).astype(np.int32) == y).astype(np.float64), weights)


def _class_weights_by_score(y: np.ndarray, p: np.ndarray, weights: np.ndarray, descending: bool) -> tuple:
    """Per distinct score (ordered), the weight of positives and of negatives in it, for every weighting."""
    order = np.argsort(-p if descending else p, kind="mergesort")
    scores = p[order]
    starts = np.flatnonzero(np.r_[True, scores[1:] != scores[:-1]])
    w = weights[:, order]
    positive = y[order] == 1
    pos = np.add.reduceat(np.where(positive, w, 0.0), starts, axis=1)
    neg = np.add.reduceat(np.where(positive, 0.0, w), starts, axis=1)
    return pos, neg


def _roc_auc(y: np.ndarray, p: np.ndarray, weights: np.ndarray) -> np.ndarray:
    """Mann-Whitney with ties counted half: the chance that a late row scores above an on-time one."""
    pos, neg = _class_weights_by_score(y, p, weights, descending=False)
    neg_below = np.cumsum(neg, axis=1) - neg
    with np.errstate(invalid="ignore", divide="ignore"):
        return (pos * (neg_below + 0.5 * neg)).sum(axis=1) / (pos.sum(axis=1) * neg.sum(axis=1))


def _pr_auc(y: np.ndarray, p: np.ndarray, weights: np.ndarray) -> np.ndarray:
    """Average precision (scikit-learn's step-wise sum, no interpolation) over the distinct scores."""
    pos, neg = _class_weights_by_score(y, p, weights, descending=True)
    tp, fp = np.cumsum(pos, axis=1), np.cumsum(neg, axis=1)
    with np.errstate(invalid="ignore", divide="ignore"):
        precision = tp / (tp + fp)
        return (pos * precision).sum(axis=1) / tp[:, -1]


OBJECTIVES: dict[str, Objective] = {
    "log_loss": Objective("log_loss", _log_loss, higher_is_better=False),
    "roc_auc": Objective("roc_auc", _roc_auc, higher_is_better=True),
    "pr_auc": Objective("pr_auc", _pr_auc, higher_is_better=True),
    "accuracy": Objective("accuracy", _accuracy, higher_is_better=True),
}

DEFAULT = "log_loss"


def get(name: str) -> Objective:
    """The objective called ``name``; a one-line error naming the choices otherwise."""
    if name not in OBJECTIVES:
        raise TrainerError(f"unknown objective {name!r}", f"use one of {', '.join(OBJECTIVES)}")
    return OBJECTIVES[name]
