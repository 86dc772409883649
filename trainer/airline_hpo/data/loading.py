"""Load the airline table once per process and check it before any training starts.

The seed re-read the parquet file inside every trial; here :func:`load_dataset` caches by source, so a search
(and every trial in it) shares one copy. Everything that can be wrong with the input (missing file, not parquet,
no rows, missing column, a label that is not 0/1 or has one class, missing or infinite feature values) is
reported as a one-line :class:`~airline_hpo.errors.TrainerError` before any run is created.

Only the 14 columns the model uses are read. From ``s3://`` the CPU path fetches just their byte ranges
(:class:`~airline_hpo.data.storage.S3RangeFile`) and converts them to float32 once; with ``engine="cuml"`` the table
goes straight into cuDF (``cudf.read_parquet`` with ``storage_options`` from the environment) and never
passes through pandas.

Missing or infinite feature values: scikit-learn fits through NaN, cuML refuses them (it checks finiteness),
so either engine would see different data. They are caught at load, counted per column, and fail the run
(``nonfinite="fail"``) or drop the rows they are in (``nonfinite="drop"``, which says how many).
"""

from __future__ import annotations

import dataclasses
import importlib.util
import sys
import time
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from airline_hpo.data import storage
from airline_hpo.errors import TrainerError
from airline_hpo.data.schema import FEATURES, LABEL

COLUMNS: tuple[str, ...] = (*FEATURES, LABEL)
NONFINITE_CHOICES = ("fail", "drop")
ENGINES = ("sklearn", "cuml")

_CACHE: dict[tuple[Any, ...], Dataset] = {}


@dataclass(frozen=True)
class Dataset:
    """Features as float32 (what both engines want: a pandas frame, or a cuDF frame for engine cuml) and the
    label as a host int32 0/1 array (small; the split and the baseline need it on the host)."""

    features: Any
    label: np.ndarray
    source: str
    load_seconds: float
    dropped_rows: int = 0
    bytes_fetched: int = 0
    #: What the label means (a column name, or a column with a threshold): models are compared only on the same.
    target: str = LABEL

    @property
    def rows(self) -> int:
        return len(self.label)

    @property
    def late_share(self) -> float:
        return float(self.label.mean())

    @property
    def nbytes(self) -> int:
        """Memory the table takes once loaded (features and label), the yardstick of the memory benchmark."""
        return int(self.features.memory_usage(index=False).sum()) + int(self.label.nbytes)


def _empty(fpath: str) -> TrainerError:
    return TrainerError(f"fpath {fpath} is empty (0 bytes)", "prepare the data again (entry point prepare_data)")


def _open_parquet(fpath: str) -> tuple[pq.ParquetFile, storage.S3RangeFile | None]:
    """Open the file's footer only (local: memory-mapped; S3: ranged reads), so the checks below cost nothing."""
    remote = None
    if storage.is_s3(fpath):
        remote = storage.S3RangeFile(fpath)
        if remote.size == 0:
            raise _empty(fpath)
        source: Any = remote
    else:
        path = storage.local_file(fpath)
        if path.stat().st_size == 0:
            raise _empty(fpath)
        source = str(path)
    try:
        # from S3, adjacent column chunks are fetched in one ranged GET (pre_buffer coalesces them)
        return pq.ParquetFile(source, memory_map=remote is None, pre_buffer=remote is not None), remote
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


def check_types(schema: pa.Schema, fpath: str) -> None:
    """Every feature must be a number (from the file's schema, before any data is read)."""

    def numeric(kind: pa.DataType) -> bool:
        return pa.types.is_integer(kind) or pa.types.is_floating(kind) or pa.types.is_boolean(kind)

    non_numeric = [name for name in FEATURES if not numeric(schema.field(name).type)]
    if non_numeric:
        raise TrainerError(
            f"column(s) {', '.join(non_numeric)} in {fpath} are not numeric",
            "encode categorical columns as integers (see airline_hpo.data.prepare)",
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


def _column_values(features: Any, name: str) -> Any:
    """One feature as a flat float32 array on its device (numpy for pandas, cupy for cuDF; nulls as NaN)."""
    column = features[name]
    if hasattr(column, "to_cupy"):
        return column.to_cupy(na_value=np.nan)
    return column.to_numpy()


def nonfinite_rows(features: Any) -> tuple[np.ndarray, dict[str, tuple[int, int]]]:
    """Host mask of rows with a missing or infinite feature, and per column (missing, infinite) counts.
    One column at a time, so the check costs one boolean array, not a copy of the table."""
    bad_rows = np.zeros(len(features), dtype=bool)
    counts: dict[str, tuple[int, int]] = {}
    for name in FEATURES:
        values = _column_values(features, name)
        xp = sys.modules[type(values).__module__.split(".")[0]]  # numpy or cupy, whichever holds the data
        missing, infinite = xp.isnan(values), xp.isinf(values)
        n_missing, n_infinite = int(missing.sum()), int(infinite.sum())
        if n_missing or n_infinite:
            counts[name] = (n_missing, n_infinite)
            bad = missing | infinite
            bad_rows |= bad.get() if hasattr(bad, "get") else bad
    return bad_rows, counts


def _describe(counts: dict[str, tuple[int, int]]) -> str:
    parts = []
    for name, (missing, infinite) in counts.items():
        kinds = [f"{n:,} {kind}" for n, kind in ((missing, "missing"), (infinite, "infinite")) if n]
        parts.append(f"{name} {' + '.join(kinds)}")
    return ", ".join(parts)


def handle_nonfinite(features: Any, label: np.ndarray, fpath: str, nonfinite: str) -> tuple[Any, np.ndarray, int]:
    """Fail (``fail``) or drop the rows (``drop``) that hold a missing or infinite feature value."""
    if nonfinite not in NONFINITE_CHOICES:
        raise TrainerError(f"unknown nonfinite {nonfinite!r}", f"use one of {', '.join(NONFINITE_CHOICES)}")
    bad_rows, counts = nonfinite_rows(features)
    if not counts:
        return features, label, 0
    n_bad = int(bad_rows.sum())
    if nonfinite == "fail":
        raise TrainerError(
            f"fpath {fpath} has missing or infinite feature values in {n_bad:,} of {len(label):,} rows "
            f"({_describe(counts)}); cuML cannot fit on them",
            "clean the file, or pass nonfinite=drop (--nonfinite drop) to drop those rows",
        )
    keep = ~bad_rows
    if not keep.any():
        raise TrainerError(f"every row of {fpath} has a missing or infinite feature", "clean the file")
    print(
        f"dropped {n_bad:,} of {len(label):,} rows of {fpath} with missing or infinite values ({_describe(counts)})",
        file=sys.stderr,
        flush=True,
    )
    return features[keep].reset_index(drop=True), label[keep], n_bad


def _read_host(parquet: pq.ParquetFile) -> tuple[pd.DataFrame, pd.Series]:
    """The needed columns as float32 pandas columns. Each column becomes its own block and Arrow's buffers are
    freed as they are converted (``split_blocks``, ``self_destruct``), so no second copy of the table is
    ever whole: the load path peaks near 1.6 times the table (``make bench``, ``benchmarks.load_memory``)."""
    table = parquet.read(columns=list(COLUMNS))
    label = table.column(LABEL).to_pandas()
    features = table.select(list(FEATURES)).cast(pa.schema([pa.field(name, pa.float32()) for name in FEATURES]))
    del table
    frame = features.to_pandas(split_blocks=True, self_destruct=True, use_threads=False)
    del features
    return frame, label


def _read_device(fpath: str, parquet: pq.ParquetFile) -> tuple[Any, pd.Series]:
    """The needed columns straight into GPU memory as cuDF, no pandas on the way. From ``s3://`` cuDF reads
    through fsspec's s3fs when the image has it, with endpoint and keys from the environment; without s3fs
    the column chunks come through our ranged reader and go to the GPU as Arrow."""
    import cudf

    try:
        if not storage.is_s3(fpath):
            frame = cudf.read_parquet(fpath, columns=list(COLUMNS))
        elif importlib.util.find_spec("s3fs") is not None:
            frame = cudf.read_parquet(fpath, columns=list(COLUMNS), storage_options=storage.fsspec_storage_options())
        else:
            frame = cudf.DataFrame.from_arrow(parquet.read(columns=list(COLUMNS)))
    except (OSError, ValueError, RuntimeError) as exc:
        raise TrainerError(
            f"cuDF could not read {fpath}: {str(exc).splitlines()[0] if str(exc) else type(exc).__name__}",
            "check the URI, MLFLOW_S3_ENDPOINT_URL and the AWS key pair, or run with engine=sklearn",
        ) from exc
    label = frame[LABEL].to_pandas()
    features = frame[list(FEATURES)].astype(np.float32)
    del frame
    return features, label


def read_dataset(fpath: str, nonfinite: str = "fail", engine: str = "sklearn") -> Dataset:
    """Read and check without the cache (the benchmarks use this: the seed's per-trial re-read, and memory)."""
    if engine not in ENGINES:
        raise TrainerError(f"unknown engine {engine!r} for loading", f"use one of {', '.join(ENGINES)}")
    if nonfinite not in NONFINITE_CHOICES:
        raise TrainerError(f"unknown nonfinite {nonfinite!r}", f"use one of {', '.join(NONFINITE_CHOICES)}")
    started = time.perf_counter()
    parquet, remote = _open_parquet(fpath)
    check_columns(parquet.schema_arrow.names, fpath)
    if parquet.metadata.num_rows == 0:
        raise TrainerError(f"fpath {fpath} has no rows", "prepare the data again (entry point prepare_data)")
    check_types(parquet.schema_arrow, fpath)
    features, label_series = _read_device(fpath, parquet) if engine == "cuml" else _read_host(parquet)
    label = check_label(label_series, fpath)
    del label_series
    features, label, dropped = handle_nonfinite(features, label, fpath, nonfinite)
    check_label(pd.Series(label), fpath)  # dropping rows may leave one class
    fetched = remote.bytes_fetched if remote is not None else 0
    return Dataset(features, label, fpath, time.perf_counter() - started, dropped, fetched)


def sample(data: Dataset, max_rows: int, seed: int) -> Dataset:
    """``max_rows`` rows drawn with ``seed`` from the whole file, in file order (the first rows of a
    prepared file are all January, so a prefix would be a biased sample)."""
    if not 0 < max_rows < data.rows:
        return data
    rows = np.sort(np.random.default_rng(seed).choice(data.rows, size=max_rows, replace=False))
    features = data.features.iloc[rows].reset_index(drop=True)
    label = check_label(pd.Series(data.label[rows]), f"the {max_rows} sampled rows of {data.source}")
    return dataclasses.replace(data, features=features, label=label)


def load_dataset(
    fpath: str, max_rows: int = 0, *, seed: int = 0, nonfinite: str = "fail", engine: str = "sklearn"
) -> Dataset:
    """The dataset at ``fpath`` (local path or ``s3://``), read once per process. ``max_rows`` > 0 keeps a
    random sample of that many rows drawn with ``seed``; ``nonfinite`` is ``fail`` or ``drop``; ``engine``
    ``cuml`` keeps the features in GPU memory (cuDF)."""
    if max_rows < 0:
        raise TrainerError(f"max_rows must be 0 (all) or positive (got {max_rows})", "pass 0 or more")
    key = (fpath, max_rows, seed if max_rows else 0, nonfinite, engine)
    if key not in _CACHE:
        _CACHE[key] = sample(read_dataset(fpath, nonfinite, engine), max_rows, seed)
    return _CACHE[key]


def clear_cache() -> None:
    _CACHE.clear()
