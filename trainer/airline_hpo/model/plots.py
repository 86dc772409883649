"""The images a search leaves on its parent run: how the search went, what the best model looks at (impurity and
permutation importance), and how its probabilities and its label do on the test rows (confusion matrix at the
chosen threshold, ROC, precision-recall and calibration curves)."""

from __future__ import annotations

from collections.abc import Sequence

import matplotlib

matplotlib.use("Agg")  # headless: training runs in Jobs and CI without a display

import matplotlib.pyplot as plt
import numpy as np
from matplotlib.figure import Figure


def search_plot(
    losses: Sequence[float | None], baseline_loss: float | None = None, ylabel: str = "loss (lower is better)"
) -> Figure:
    """Loss (1 - validation accuracy) of each trial in order, failed trials marked, and the best loss so far."""
    fig, ax = plt.subplots(figsize=(7, 4))
    numbers = np.arange(1, len(losses) + 1)
    ok = [(n, loss) for n, loss in zip(numbers, losses, strict=True) if loss is not None]
    failed = [n for n, loss in zip(numbers, losses, strict=True) if loss is None]
    if ok:
        xs, ys = zip(*ok, strict=True)
        ax.scatter(xs, ys, label="trial loss", color="tab:blue", zorder=3)
        ax.step(xs, np.minimum.accumulate(ys), where="post", label="best so far", color="tab:green")
    if failed:
        top = max((y for _, y in ok), default=1.0)
        ax.scatter(failed, [top] * len(failed), marker="x", color="tab:red", label="failed trial", zorder=3)
    if baseline_loss is not None:
        ax.axhline(baseline_loss, linestyle="--", color="gray", label="constant-prior baseline")
    ax.set_xlabel("trial")
    ax.set_ylabel(ylabel)
    ax.set_title("hyperparameter search")
    ax.legend(loc="best")
    fig.tight_layout()
    return fig


def importance_plot(names: Sequence[str], importances: Sequence[float]) -> Figure:
    """Impurity-based feature importances of the best model, largest on top."""
    order = np.argsort(importances)
    fig, ax = plt.subplots(figsize=(7, 4.5))
    ax.barh([names[i] for i in order], [importances[i] for i in order], color="tab:orange")
    ax.set_xlabel("mean decrease in impurity")
    ax.set_title("best model: feature importances")
    fig.tight_layout()
    return fig


def permutation_importance_plot(
    names: Sequence[str], means: Sequence[float], stds: Sequence[float], score: str
) -> Figure:
    """How much the validation score drops when one column's values are shuffled, largest on top, with the
    spread over repeats: what the model relies on, unlike impurity, which favours columns with many values."""
    order = np.argsort(means)
    fig, ax = plt.subplots(figsize=(7, 4.5))
    ax.barh([names[i] for i in order], [means[i] for i in order], xerr=[stds[i] for i in order], color="tab:purple")
    ax.axvline(0, color="gray", linewidth=0.8)
    ax.set_xlabel(f"drop in validation {score} when the column is shuffled")
    ax.set_title("best model: permutation importance")
    fig.tight_layout()
    return fig


def confusion_plot(matrix: np.ndarray, threshold: float) -> Figure:
    """The test rows' confusion matrix (rows: truth, columns: the served label at ``threshold``), with counts."""
    fig, ax = plt.subplots(figsize=(4.8, 4.2))
    ax.imshow(matrix, cmap="Blues")
    names = ["on time (0)", "late (1)"]
    for (i, j), count in np.ndenumerate(matrix):
        color = "white" if count > matrix.max() / 2 else "black"
        ax.text(j, i, f"{count:,}", ha="center", va="center", color=color)
    ax.set_xticks([0, 1], names)
    ax.set_yticks([0, 1], names)
    ax.set_xlabel("predicted (label)")
    ax.set_ylabel("actual")
    ax.set_title(f"test rows at threshold {threshold:.3f}")
    fig.tight_layout()
    return fig


def curve_plot(x: np.ndarray, y: np.ndarray, title: str, xlabel: str, ylabel: str, reference: tuple | None) -> Figure:
    """One curve on the test rows (ROC, precision-recall, calibration) with its chance/ideal line dashed."""
    fig, ax = plt.subplots(figsize=(5, 4.5))
    ax.plot(x, y, color="tab:blue", marker="o" if len(x) <= 20 else None, label="best model")
    if reference is not None:
        (rx, ry), label = reference
        ax.plot(rx, ry, linestyle="--", color="gray", label=label)
    ax.set_xlim(0, 1)
    ax.set_ylim(0, 1.02)
    ax.set_xlabel(xlabel)
    ax.set_ylabel(ylabel)
    ax.set_title(title)
    ax.legend(loc="best")
    fig.tight_layout()
    return fig


def close(fig: Figure) -> None:
    plt.close(fig)
