"""How rows are split and which columns a model may see: the part of the trainer that makes its score honest.

Flights of the same day share weather and congestion, so a split by flight lets a model learn which days were bad
and scores it on the same days (measured on 60,000 prepared flights: 0.697 accuracy with a random split, 0.662 with
whole days held out, 0.597 when November-December are predicted from January-October). Hence:

- ``split=date`` (default): whole days go to one part; which days is drawn with the seed.
- ``split=time``: days in time order, the latest days are the test part, the ones before them validation.
- ``split=random``: by flight, stratified (the old, optimistic way; kept for comparison).

Three parts: the search fits on *train* and minimizes loss on *validation*; *test* is seen by no trial, only by
the model refitted on train+validation with the best configuration, and by the majority baseline beside it.

Columns: ``ActualElapsedTime`` and ``Diverted`` are known only after landing, so ``features=pre_departure``
(default) leaves them out; ``features=all`` keeps them. Columns with a single value carry nothing and are
dropped with a one-line warning (``Year`` in one year's data).
"""

from __future__ import annotations

import sys
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd
from airline_hpo.data.loading import Dataset
from airline_hpo.data.table import AIRLINE_DATE, AIRLINE_POST_LANDING
from airline_hpo.errors import TrainerError

SPLITS = ("date", "time", "random")
FEATURE_SETS = ("pre_departure", "all")

#: Known only once the flight has landed: a model that is to predict a delay before departure must not see them.
POST_LANDING = AIRLINE_POST_LANDING

#: The columns that make a flight's date (present in every airline file: the schema requires them).
DATE_COLUMNS = AIRLINE_DATE


@dataclass(frozen=True)
class Split:
    """Three parts of one dataset, with the feature columns the model uses. ``test_index`` are the test rows'
    positions in the dataset (to score another model, e.g. the current champion, on exactly these rows)."""

    x_train: pd.DataFrame
    y_train: np.ndarray
    x_val: pd.DataFrame
    y_val: np.ndarray
    x_test: pd.DataFrame
    y_test: np.ndarray
    test_index: np.ndarray
    kind: str
    features: tuple[str, ...]
    dropped_constant: tuple[str, ...] = ()
    #: First and last day of train, validation and test (empty for a random split)
    windows: tuple[str, ...] = ()
    #: Features used that are known only after the event (``features=all``): such a model is never champion.
    unknown_at_decision: tuple[str, ...] = ()

    @property
    def x_fit(self) -> pd.DataFrame:
        """Train and validation together: what the chosen configuration is refitted on."""
        if hasattr(self.x_train, "to_pandas"):  # cuDF frames (a GPU loader) concatenate on the device
            import cudf

            return cudf.concat([self.x_train, self.x_val])
        return pd.concat([self.x_train, self.x_val])

    @property
    def y_fit(self) -> np.ndarray:
        return np.concatenate([self.y_train, self.y_val])

    @staticmethod
    def _majority_accuracy(y_known: np.ndarray, y_scored: np.ndarray) -> float:
        majority = int(np.bincount(y_known, minlength=2).argmax())
        return float((y_scored == majority).mean())

    @property
    def val_baseline_accuracy(self) -> float:
        """Always predicting the training part's commoner class, scored on validation."""
        return self._majority_accuracy(self.y_train, self.y_val)

    @property
    def test_baseline_accuracy(self) -> float:
        """Always predicting the commoner class of train+validation, scored on the test rows: the bar to beat."""
        return self._majority_accuracy(self.y_fit, self.y_test)

    def sizes(self) -> dict[str, int]:
        return {"train_rows": len(self.y_train), "val_rows": len(self.y_val), "test_rows": len(self.y_test)}


def _warn(message: str) -> None:
    print(f"warning: {message}", file=sys.stderr, flush=True)


def select_features(
    features: pd.DataFrame, feature_set: str, exclude: tuple[str, ...] = POST_LANDING
) -> tuple[list[str], list[str]]:
    """The columns a model gets (``pre_departure``: all but ``exclude``, the ones not known at decision time),
    and the constant ones dropped (with a one-line warning)."""
    if feature_set not in FEATURE_SETS:
        raise TrainerError(f"unknown features {feature_set!r}", f"use one of {', '.join(FEATURE_SETS)}")
    wanted = [c for c in features.columns if feature_set == "all" or c not in exclude]
    constant = [c for c in wanted if features[c].nunique(dropna=False) <= 1]
    if constant:
        _warn(f"dropped constant column(s) {', '.join(constant)}: a single value carries nothing to learn")
    kept = [c for c in wanted if c not in constant]
    if not kept:
        raise TrainerError("every feature column is constant", "use data with more than one day, carrier, route")
    return kept, constant


def day_keys(features: pd.DataFrame) -> np.ndarray:
    """One integer per row naming its date (yyyymmdd), from the date columns (also when they are float32)."""
    parts = [np.asarray(_host(features[c]), dtype=np.int64) for c in DATE_COLUMNS]
    return parts[0] * 10_000 + parts[1] * 100 + parts[2]


def _day(key: int) -> str:
    """A time key as people read it: ``yyyymmdd`` keys as dates, other numbers as they are."""
    key = int(key)
    if 1_000_01_01 <= key <= 9999_12_31:
        return f"{key // 10_000:04d}-{key // 100 % 100:02d}-{key % 100:02d}"
    return str(key)


def _host(column: Any) -> Any:
    """A column as a host array (cuDF columns, where the loader returns them, copy to the host here)."""
    return column.to_numpy() if hasattr(column, "to_numpy") else column


def _check_sizes(test_size: float, val_size: float) -> None:
    for name, value in (("test_size", test_size), ("val_size", val_size)):
        if not 0.0 < value < 1.0:
            raise TrainerError(f"{name} must be between 0 and 1 (got {value})", f"pass e.g. {name}=0.2")
    if test_size + val_size >= 1.0:
        raise TrainerError(
            f"test_size + val_size must leave rows to train on (got {test_size} + {val_size})",
            "pass e.g. test_size=0.2 val_size=0.2",
        )


def _by_days(
    days: np.ndarray, ordered: np.ndarray, test_size: float, val_size: float, gap: int = 0
) -> tuple[np.ndarray, ...]:
    """Row positions of train, validation and test when whole days are assigned in the order ``ordered``: the
    last days (by row count) go to test, the ones before them to validation. ``gap`` days before validation and
    before test belong to no part (time order only: what is known when a prediction is made lags behind)."""
    if len(ordered) < 3:
        raise TrainerError(
            f"the data covers {len(ordered)} day(s); a split by date needs at least 3",
            "use more rows (max_rows=0 for all) or split=random",
        )
    rows_per_day = pd.Series(days).value_counts().reindex(ordered).to_numpy()
    share_before = (np.cumsum(rows_per_day) - rows_per_day) / rows_per_day.sum()
    part = np.where(share_before >= 1.0 - test_size, 2, np.where(share_before >= 1.0 - test_size - val_size, 1, 0))
    part[-1] = 2  # at least one day in each part, however small the shares
    if not (part == 1).any():
        part[-2] = 1
    if not (part == 0).any():
        part[0] = 0
    if gap:
        for boundary, earlier in ((int(np.argmax(part == 1)), 0), (int(np.argmax(part == 2)), 1)):
            before = part[max(0, boundary - gap) : boundary]  # a view: the days just before the later part
            before[before == earlier] = -1
        if not ((part == 0).any() and (part == 1).any()):
            raise TrainerError(
                f"a gap of {gap} day(s) leaves no days to train or validate on ({len(ordered)} days in all)",
                "use a smaller gap or more days",
            )
    by_day = np.argsort(ordered)  # each row's day -> its place in ``ordered`` -> its part, without a Python loop
    row_part = part[by_day][np.searchsorted(ordered[by_day], days)]
    return tuple(np.flatnonzero(row_part == p) for p in (0, 1, 2))


def _random_rows(label: np.ndarray, test_size: float, val_size: float, seed: int) -> tuple[np.ndarray, ...]:
    from sklearn.model_selection import train_test_split

    positions = np.arange(len(label))
    try:
        rest, test = train_test_split(positions, test_size=test_size, random_state=seed, stratify=label)
        train, val = train_test_split(
            rest, test_size=val_size / (1.0 - test_size), random_state=seed, stratify=label[rest]
        )
    except ValueError as exc:  # too few rows of a class for a stratified split
        raise TrainerError(f"cannot split the rows: {exc}", "use more rows or other test_size/val_size") from exc
    return np.sort(train), np.sort(val), np.sort(test)


def make_split(
    data: Dataset,
    kind: str = "date",
    test_size: float = 0.2,
    val_size: float = 0.2,
    seed: int = 42,
    feature_set: str = "pre_departure",
    gap: int = 0,
) -> Split:
    """Split ``data`` into train/validation/test once per process, so every trial is scored on the same rows."""
    if kind not in SPLITS:
        raise TrainerError(f"unknown split {kind!r}", f"use one of {', '.join(SPLITS)}")
    _check_sizes(test_size, val_size)
    columns, constant = select_features(data.features, feature_set, data.exclude)
    windows: tuple[str, ...] = ()
    if kind == "random":
        train, val, test = _random_rows(data.label, test_size, val_size, seed)
    elif not data.time_columns:
        raise TrainerError(
            f"split={kind} needs the order of the rows in time, and the spec names no data.time_column",
            "add data.time_column to the spec, or use split=random",
        )
    else:
        days = data.order if data.order is not None else day_keys(data.features)
        unique = np.unique(days)
        ordered = unique if kind == "time" else np.random.default_rng(seed).permutation(unique)
        train, val, test = _by_days(days, ordered, test_size, val_size, gap if kind == "time" else 0)
        if kind == "time":  # the date split draws days at random: no windows to speak of
            windows = tuple(f"{_day(days[rows].min())}..{_day(days[rows].max())}" for rows in (train, val, test))
    for name, rows in (("validation", val), ("test", test)):
        if len(np.unique(data.label[rows])) < 2:
            raise TrainerError(
                f"the {name} part of the {kind} split has one class only ({len(rows)} rows)",
                f"use more rows, a larger {'val' if name == 'validation' else 'test'}_size, or another seed",
            )
    cols = [data.features.columns.get_loc(c) for c in columns]  # rows and columns in one copy per part
    return Split(
        data.features.iloc[train, cols],
        data.label[train],
        data.features.iloc[val, cols],
        data.label[val],
        data.features.iloc[test, cols],
        data.label[test],
        test,
        kind,
        tuple(columns),
        tuple(constant),
        windows,
        tuple(c for c in columns if c in data.exclude),
    )
