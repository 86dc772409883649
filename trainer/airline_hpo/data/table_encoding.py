"""How a table's columns become the numbers a forest takes: the same code at training and in the served model.

This file imports only numpy and pandas: it is logged beside the served model (MLflow ``code_paths``) and
imported there as ``table_encoding``, so a model answers raw rows (carrier codes as strings, timestamps as
datetimes) exactly as it was trained on them, wherever it is served.

- numbers and booleans: float32;
- strings and categoricals: the category's position in the sorted list seen in the data, -1 for a value the
  model never saw (and for a missing one);
- datetimes: their year, month, day, day of week and hour, one column each (``<col>.month``...).

Anything else (lists, dicts, bytes, mixed objects, a column with no value at all) cannot be used: the loader
names it in one line.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd

DATETIME_PARTS = ("year", "month", "day", "dayofweek", "hour")


def kind_of(column: pd.Series) -> str | None:
    """``numeric``, ``categorical`` or ``datetime``; None for a column no model here can use."""
    if column.isna().all():
        return None
    if pd.api.types.is_bool_dtype(column) or pd.api.types.is_numeric_dtype(column):
        return "numeric"
    if pd.api.types.is_datetime64_any_dtype(column):
        return "datetime"
    if isinstance(column.dtype, pd.CategoricalDtype) or pd.api.types.is_string_dtype(column):
        values = column.dropna()
        return "categorical" if values.map(lambda v: isinstance(v, str)).all() else None
    return None


def fit(frame: pd.DataFrame) -> dict[str, Any]:
    """The encoding of ``frame``'s columns (JSON-ready: it travels in the model's config). Every column must
    have a kind (:func:`kind_of`): check with :func:`unusable` first."""
    encoding: dict[str, Any] = {"columns": list(frame.columns), "categories": {}, "datetimes": [], "sources": {}}
    for name in frame.columns:
        kind = kind_of(frame[name])
        if kind == "categorical":
            encoding["categories"][name] = sorted(str(v) for v in frame[name].dropna().unique())
        if kind == "datetime":
            encoding["datetimes"].append(name)
            encoding["sources"].update({f"{name}.{part}": name for part in DATETIME_PARTS})
        else:
            encoding["sources"][name] = name
    return encoding


def unusable(frame: pd.DataFrame) -> list[str]:
    """Columns no model here can use, each with its dtype."""
    return [f"{name} ({frame[name].dtype})" for name in frame.columns if kind_of(frame[name]) is None]


def apply(frame: pd.DataFrame, encoding: dict[str, Any]) -> pd.DataFrame:
    """The encoded float32 frame: every column of ``encoding`` that ``frame`` has, in the encoding's order."""
    out: dict[str, Any] = {}
    for name in encoding["columns"]:
        if name not in frame.columns:
            continue
        column = frame[name]
        if name in encoding["categories"]:
            codes = pd.Categorical(column.astype("object"), categories=encoding["categories"][name]).codes
            out[name] = codes.astype(np.float32)  # -1: unseen or missing
        elif name in encoding["datetimes"]:
            stamps = pd.to_datetime(column)
            for part in DATETIME_PARTS:
                out[f"{name}.{part}"] = getattr(stamps.dt, part).to_numpy(dtype=np.float32, na_value=np.nan)
        else:
            out[name] = pd.to_numeric(column).to_numpy(dtype=np.float32, na_value=np.nan)
    return pd.DataFrame(out, index=frame.index)


def sources(features: list[str], encoding: dict[str, Any]) -> list[str]:
    """The raw columns that the encoded ``features`` come from, in the table's order: what a caller sends."""
    needed = {encoding["sources"].get(f, f) for f in features}
    return [c for c in encoding["columns"] if c in needed]
