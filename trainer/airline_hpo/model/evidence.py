"""Is one model better than another on the same rows, beyond noise? A paired bootstrap of the objective.

Both models' probabilities on the same test rows are resampled together (the same row positions for both, so
what the two share, such as a hard day, cancels out), the objective is computed for each on every resample, and
the improvement's percentile interval is returned. A promotion asks for its lower bound to clear a margin: on
the seed's two test days one model's AUC spans 0.726-0.785 across seeds (design notes §3c), so a strict ``>`` on
one test score promotes noise, and repeated promotions on the same rows drift the champion's score upward.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from airline_hpo.model.objectives import Objective

#: Resamples; 1000 keeps the 2.5% bound's Monte Carlo error well below the differences that matter.
RESAMPLES = 1000
CONFIDENCE = 0.95
#: Resamples computed at once (a chunk of weights is CHUNK x rows floats).
CHUNK = 50


@dataclass(frozen=True)
class Comparison:
    objective: str
    new: float
    old: float
    #: new better than old by this much (positive = better, whatever the objective's direction)
    improvement: float
    low: float
    high: float
    confidence: float
    rows: int

    def clears(self, margin: float) -> bool:
        """The improvement's lower bound is above ``margin``: better beyond noise."""
        return self.low > margin

    def describe(self) -> str:
        pct = round(self.confidence * 100)
        return (
            f"{self.objective} {self.new:.4f} vs champion's {self.old:.4f} on the same {self.rows:,} rows, "
            f"improvement {self.improvement:+.4f} ({pct}% interval {self.low:+.4f} to {self.high:+.4f})"
        )


def _resampled_weights(n: int, resamples: int, rng: np.random.Generator):
    """Bootstrap resamples of ``n`` rows as row counts, ``CHUNK`` resamples at a time: ``objective(y[rows],
    p[rows])`` equals the objective weighted by these counts."""
    for size in [CHUNK] * (resamples // CHUNK) + ([resamples % CHUNK] if resamples % CHUNK else []):
        rows = rng.integers(0, n, (size, n)) + (np.arange(size) * n)[:, None]
        yield np.bincount(rows.ravel(), minlength=size * n).reshape(size, n).astype(np.float64)


def _percentiles(values: list[np.ndarray], confidence: float) -> tuple[float, float]:
    # a resample with one class only leaves a rank objective undefined (NaN): it is left out
    tail = (1.0 - confidence) / 2 * 100
    low, high = np.nanpercentile(np.concatenate(values), [tail, 100.0 - tail])
    return float(low), float(high)


def interval(
    objective: Objective,
    y: np.ndarray,
    probability: np.ndarray,
    *,
    resamples: int = RESAMPLES,
    confidence: float = CONFIDENCE,
    seed: int = 0,
) -> tuple[float, float]:
    """The percentile bootstrap interval of one model's ``objective`` on rows ``y``: how much a test score would
    move on another draw of as many rows (two test days decide little, design notes §3c). Seeded."""
    y, p = np.asarray(y), np.asarray(probability, dtype=np.float64)
    rng = np.random.default_rng(seed)
    return _percentiles([objective.batch(y, p, w) for w in _resampled_weights(len(y), resamples, rng)], confidence)


def paired_bootstrap(
    objective: Objective,
    y: np.ndarray,
    p_new: np.ndarray,
    p_old: np.ndarray,
    *,
    resamples: int = RESAMPLES,
    confidence: float = CONFIDENCE,
    seed: int = 0,
) -> Comparison:
    """The improvement of ``p_new`` over ``p_old`` on rows ``y`` and its percentile interval; seeded, so the
    same inputs always give the same decision."""
    y, p_new, p_old = np.asarray(y), np.asarray(p_new, dtype=np.float64), np.asarray(p_old, dtype=np.float64)
    new, old = objective(y, p_new), objective(y, p_old)
    rng = np.random.default_rng(seed)
    n = len(y)
    gains = [
        objective.improvement(objective.batch(y, p_new, w), objective.batch(y, p_old, w))
        for w in _resampled_weights(n, resamples, rng)
    ]
    low, high = _percentiles(gains, confidence)
    return Comparison(objective.name, new, old, objective.improvement(new, old), low, high, confidence, n)
