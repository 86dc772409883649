"""What a data scientist looks at after a search, logged on its parent run: how the best model does on the test
rows (confusion matrix at the served threshold, ROC, precision-recall and calibration curves) and which columns
it relies on (permutation importance on the validation part).

Permutation importance is measured on rows the model did not learn from: the validation part, scored by the
model fitted on train only (the one the threshold comes from), with the spec's objective as the score. Impurity
importance, which the forest gives for free, favours columns with many distinct values (it ranked ``FlightNum``
first on the airline data, where shuffling carrier and distance costs the most: issue 15), so both are logged.
The rows are bounded (``MAX_ROWS``, drawn with the search's seed) so it takes seconds on any table.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import mlflow
import numpy as np
import pandas as pd

from airline_hpo.model import plots

#: At most this many validation rows are shuffled (drawn with the seed); repeats per column.
MAX_ROWS = 5000
REPEATS = 5
#: scikit-learn's scorer for each objective (higher is better, as permutation importance expects).
SCORERS = {"log_loss": "neg_log_loss", "roc_auc": "roc_auc", "pr_auc": "average_precision", "accuracy": "accuracy"}


def _log(figure: Any, path: str) -> None:
    mlflow.log_figure(figure, path)
    plots.close(figure)


def log_test_plots(y: np.ndarray, probability: np.ndarray, threshold: float) -> list[str]:
    """The four test-row plots under ``plots/``; returns their artifact paths."""
    from sklearn.calibration import calibration_curve
    from sklearn.metrics import confusion_matrix, precision_recall_curve, roc_curve

    y = np.asarray(y).astype(np.int64)
    p = np.asarray(probability, dtype=np.float64)
    matrix = confusion_matrix(y, (p >= threshold).astype(np.int64), labels=[0, 1])
    fpr, tpr, _ = roc_curve(y, p)
    precision, recall, _ = precision_recall_curve(y, p)
    observed, predicted = calibration_curve(y, p, n_bins=10, strategy="quantile")
    share = float(y.mean())
    figures = {
        "plots/confusion_matrix.png": plots.confusion_plot(matrix, threshold),
        "plots/roc_curve.png": plots.curve_plot(
            fpr, tpr, "ROC curve (test rows)", "false positive rate", "true positive rate",
            (([0, 1], [0, 1]), "chance"),
        ),
        "plots/pr_curve.png": plots.curve_plot(
            recall, precision, "precision-recall curve (test rows)", "recall", "precision",
            (([0, 1], [share, share]), f"chance (late share {share:.2f})"),
        ),
        "plots/calibration_curve.png": plots.curve_plot(
            predicted, observed, "calibration (test rows, 10 quantile bins)", "mean predicted probability",
            "observed late share", (([0, 1], [0, 1]), "perfectly calibrated"),
        ),
    }  # fmt: skip
    for path, figure in figures.items():
        _log(figure, path)
    return list(figures)


def permutation_importance(
    model: Any, x: pd.DataFrame, y: np.ndarray, objective: str, seed: int, max_rows: int = MAX_ROWS
) -> tuple[np.ndarray, np.ndarray]:
    """Mean and standard deviation of the drop in ``objective`` when each column of ``x`` is shuffled
    (scikit-learn's ``permutation_importance``, seeded), on at most ``max_rows`` rows of ``x``."""
    from sklearn.inspection import permutation_importance as sklearn_permutation

    rng = np.random.default_rng(seed)
    rows = np.sort(rng.choice(len(x), size=min(max_rows, len(x)), replace=False))
    result = sklearn_permutation(
        model, x.iloc[rows].astype(np.float32), np.asarray(y)[rows], scoring=SCORERS[objective],
        n_repeats=REPEATS, random_state=seed, n_jobs=1,
    )  # fmt: skip
    return result.importances_mean, result.importances_std


def log_permutation_importance(
    model: Any, x: pd.DataFrame, y: np.ndarray, objective: str, seed: int, names: Sequence[str]
) -> dict[str, float]:
    """Permutation importance on the validation rows as ``plots/permutation_importance.png`` and the table
    ``importance/permutation.json`` (column -> mean drop); returns that table."""
    means, stds = permutation_importance(model, x, y, objective, seed)
    _log(plots.permutation_importance_plot(list(names), means, stds, objective), "plots/permutation_importance.png")
    table = {name: float(mean) for name, mean in zip(names, means, strict=True)}
    mlflow.log_dict({"score": objective, "rows": min(MAX_ROWS, len(x)), "repeats": REPEATS, "mean_drop": table},
                    "importance/permutation.json")  # fmt: skip
    return table
