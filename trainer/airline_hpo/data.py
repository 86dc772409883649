"""Load the airline table once per process and check it before any training starts.

The seed re-read the parquet file inside every trial; here :func:`load_dataset` caches by source, so a search
(and every trial in it) shares one copy. Everything that can be wrong with the input (missing file, not parquet,
no rows, missing column, a label that is not 0/1 or has one class) is reported as a one-line
:class:`~airline_hpo.errors.TrainerError` before any run is created.
"""

from __future__ import annotations

import io
import time
from dataclasses import dataclass

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from airline_hpo import storage
from airline_hpo.errors import TrainerError
from airline_hpo.schema import FEATURES, LABEL

_CACHE: dict[tuple[str, int], Dataset] = {}


@dataclass(frozen=True)
class Dataset:
    """Features as float32 (what both engines want) and the label as int32 0/1."""

    features: pd.DataFrame
    label: np.ndarray
    source: str
    load_seconds: float

    @property
    def rows(self) -> int:
        return len(self.label)

    @property
    def late_share(self) -> float:
        return float(self.label.mean())


def _parquet_file(payload: bytes, fpath: str) -> pq.ParquetFile:
    if not payload:
        raise TrainerError(f"fpath {fpath} is empty (0 bytes)", "prepare the data again (entry point prepare_data)")
    try:
        return pq.ParquetFile(io.BytesIO(payload))
    except (pa.ArrowInvalid, OSError) as exc:
        raise TrainerError(
            f"fpath {fpath} is not a readable parquet file ({exc})",
            "pass a parquet file in the airline schema (entry point prepare_data writes one)",
        ) from exc


def check_columns(names: list[str], fpath: str) -> None:
    """The label and every feature must be present; extra columns are ignored (the real sample has none)."""
    if LABEL not in names:
        raise TrainerError(
            f"fpath {fpath} has no label column {LABEL!r}",
            f"add {LABEL} (1 = arrived late, 0 = on time) or prepare the data with prepare_data",
        )
    missing = [name for name in FEATURES if name not in names]
    if missing:
        raise TrainerError(
            f"fpath {fpath} lacks required column(s) {', '.join(missing)}",
            f"provide all of {', '.join(FEATURES)} (entry point prepare_data writes them)",
        )


def check_label(label: pd.Series, fpath: str) -> np.ndarray:
    if label.isna().any():
        raise TrainerError(f"{LABEL} in {fpath} has {int(label.isna().sum())} missing values", "drop those rows")
    values = set(pd.unique(label).tolist())
    if not values <= {0, 1}:
        shown = sorted(values - {0, 1})[:5]
        raise TrainerError(f"{LABEL} in {fpath} has values {shown} besides 0 and 1", "encode late as 1, else 0")
    if len(values) < 2:
        only = next(iter(values))
        raise TrainerError(
            f"{LABEL} in {fpath} has one class only (all {only}): nothing to learn",
            "use data with both late and on-time flights (more rows, or another sample)",
        )
    return label.to_numpy(dtype=np.int32)


def check_features(features: pd.DataFrame, fpath: str) -> pd.DataFrame:
    non_numeric = [name for name in FEATURES if not pd.api.types.is_numeric_dtype(features[name])]
    if non_numeric:
        raise TrainerError(
            f"column(s) {', '.join(non_numeric)} in {fpath} are not numeric",
            "encode categorical columns as integers (see airline_hpo.prepare)",
        )
    return features.astype(np.float32)


def read_dataset(fpath: str) -> Dataset:
    """Read and check without the cache (the benchmark uses this to time the seed's per-trial re-read)."""
    started = time.perf_counter()
    parquet = _parquet_file(storage.read_bytes(fpath), fpath)
    check_columns(parquet.schema_arrow.names, fpath)
    if parquet.metadata.num_rows == 0:
        raise TrainerError(f"fpath {fpath} has no rows", "prepare the data again (entry point prepare_data)")
    table = parquet.read(columns=[*FEATURES, LABEL]).to_pandas()
    label = check_label(table[LABEL], fpath)
    features = check_features(table[list(FEATURES)], fpath)
    return Dataset(features, label, fpath, time.perf_counter() - started)


def load_dataset(fpath: str, max_rows: int = 0) -> Dataset:
    """The dataset at ``fpath`` (local path or ``s3://``), read once per process; ``max_rows`` > 0 keeps the
    first rows only (for quick runs; prepare_data's ``--rows`` draws a random sample instead)."""
    key = (fpath, max_rows)
    if key not in _CACHE:
        data = read_dataset(fpath)
        if 0 < max_rows < data.rows:
            data = Dataset(
                data.features.iloc[:max_rows].reset_index(drop=True),
                data.label[:max_rows],
                fpath,
                data.load_seconds,
            )
            check_label(pd.Series(data.label), f"the first {max_rows} rows of {fpath}")
        _CACHE[key] = data
    return _CACHE[key]


def clear_cache() -> None:
    _CACHE.clear()
