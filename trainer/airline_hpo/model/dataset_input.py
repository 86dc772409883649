"""The table a run learned from, recorded with MLflow's own dataset API (``mlflow.log_input``).

Without it a run's "Datasets used" is empty and a reader cannot tell which table, which version of it (the
digest), or which columns and types (the schema) a model was trained on. MLflow computes the digest and the
schema itself (:func:`mlflow.data.from_pandas`); the source is the table's URI as the run read it (a local path
or ``s3://``), so the record points at the table rather than at a copy.

The frame logged is what the model learned from: the raw feature columns a caller of the served model sends,
plus the target as a 0/1 column named by the spec's target (``ArrDelayBinary``, or ``ArrDelay > 15``).
"""

from __future__ import annotations

from typing import Any

import pandas as pd

#: ``mlflow.data.context`` of the input: the search's and train's rows (all three parts; the split is a tag).
CONTEXT = "training"


def frame_of(dataset: Any) -> pd.DataFrame:
    """The dataset's raw feature columns and its 0/1 target, as one pandas frame."""
    raw = dataset.raw_features
    frame = raw.to_pandas() if hasattr(raw, "to_pandas") else raw.copy()
    target = dataset.target if dataset.target not in frame.columns else f"{dataset.target} (label)"
    frame[target] = dataset.label
    return frame


def log_dataset(dataset: Any, source: str, name: str | None = None) -> Any:
    """Log ``dataset`` (a :class:`airline_hpo.data.loading.Dataset`) as the active run's training input, with
    ``source`` (the table's URI), MLflow's digest and schema; returns the MLflow dataset."""
    import mlflow.data

    frame = frame_of(dataset)
    target = frame.columns[-1]
    logged = mlflow.data.from_pandas(frame, source=source, targets=target, name=name or _name(source))
    mlflow.log_input(logged, context=CONTEXT)
    return logged


def _name(source: str) -> str:
    """The table's file name without its extension (``airline`` for ``s3://bucket/airline.parquet``)."""
    return source.rstrip("/").rsplit("/", 1)[-1].split(".", 1)[0] or "table"
