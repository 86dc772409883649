"""The two images a search leaves on its parent run: how the search went, and what the best model looks at."""

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


def close(fig: Figure) -> None:
    plt.close(fig)
