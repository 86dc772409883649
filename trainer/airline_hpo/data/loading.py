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
from airline_hpo.data import storage, table_encoding
from airline_hpo.data.schema import FEATURES, LABEL
from airline_hpo.data.table import AIRLINE_DATE, AIRLINE_POST_LANDING, TableSpec
from airline_hpo.data.table import COMPARISONS as COMPARE
from airline_hpo.errors import TrainerError

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
    #: Feature columns not known at decision time (a model reading one is never champion).
    exclude: tuple[str, ...] = AIRLINE_POST_LANDING
    #: The columns that order the rows in time (empty: only a random split).
    time_columns: tuple[str, ...] = AIRLINE_DATE
    #: One sortable key per row from ``time_columns`` (a day for dates), or None to compute from the columns.
    order: np.ndarray | None = None
    #: How raw columns become ``features`` (:mod:`airline_hpo.data.table_encoding`); the served model applies it.
    encoding: dict[str, Any] | None = None
    #: The raw feature columns (strings, datetimes) when they differ from ``features``, else None.
    raw: Any = None

    @property
    def raw_features(self) -> Any:
        """What a caller of the served model sends: the raw columns (``features`` when nothing is encoded)."""
        return self.features if self.raw is None else self.raw

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
    for name in features.columns:
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


def _table_label(frame: pd.DataFrame, spec: TableSpec) -> np.ndarray:
    """The 0/1 label the spec's target names: the column itself, or where its comparison holds."""
    target, source = spec.target, spec.uri
    if target.column not in frame.columns:
        raise TrainerError(
            f"data.target: {source} has no column {target.column!r}",
            f"name one of its columns ({', '.join(map(str, frame.columns[:8]))}...)",
        )
    column = frame[target.column]
    if target.op is None:
        return check_label(column, source).astype(np.int32) if column.name == LABEL else _zero_one(column, spec)
    if not pd.api.types.is_numeric_dtype(column):
        raise TrainerError(
            f"data.target {target}: column {target.column} is {column.dtype}, not a number",
            "compare a numeric column, or name a 0/1 column",
        )
    if column.isna().any():
        raise TrainerError(
            f"data.target {target}: {int(column.isna().sum()):,} rows have no {target.column}",
            "drop those rows from the table (an unknown outcome is not a 0)",
        )
    label = COMPARE[target.op](column.to_numpy(), target.value).astype(np.int32)
    return check_label(pd.Series(label, name=str(target)), source)


def _zero_one(column: pd.Series, spec: TableSpec) -> np.ndarray:
    values = set(pd.unique(column.dropna()).tolist())
    if column.isna().any() or not values <= {0, 1}:
        raise TrainerError(
            f"data.target {column.name} in {spec.uri} is not a 0/1 column (values {sorted(map(str, values))[:5]})",
            f"name a 0/1 column, or a threshold such as `{column.name} > <number>`",
        )
    return check_label(column.astype(np.int32), spec.uri)


def _time_order(frame: pd.DataFrame, spec: TableSpec) -> np.ndarray | None:
    """One sortable int64 per row: the day (yyyymmdd) of a datetime column, a number column as is (rounded),
    or the date that several columns (year, month, day) make together."""
    if not spec.time_columns:
        return None
    missing = [c for c in spec.time_columns if c not in frame.columns]
    if missing:
        raise TrainerError(f"data.time_column: {spec.uri} has no column {', '.join(missing)}", "name its columns")
    if len(spec.time_columns) == 1:
        column = frame[spec.time_columns[0]]
        if pd.api.types.is_datetime64_any_dtype(column):
            stamps = column.dt.tz_convert(None) if column.dt.tz is not None else column  # UTC, naive
            return (stamps.dt.year * 10_000 + stamps.dt.month * 100 + stamps.dt.day).to_numpy(dtype=np.int64)
        if pd.api.types.is_numeric_dtype(column) and not column.isna().any():
            return np.round(column.to_numpy(dtype=np.float64)).astype(np.int64)
        raise TrainerError(
            f"data.time_column {spec.time_columns[0]} is {column.dtype} (or has missing values)",
            "name a datetime or number column without gaps, or [year, month, day] columns",
        )
    parts = [pd.to_numeric(frame[c]).to_numpy(dtype=np.int64) for c in spec.time_columns]
    key = np.zeros(len(frame), dtype=np.int64)
    for part in parts:
        key = key * 100 + part if part.max() < 100 else key * 10_000 + part
    return key


def read_table(spec: TableSpec, nonfinite: str = "fail") -> Dataset:
    """Any parquet table a spec names (local or ``s3://``): the label from its target, every other column a
    candidate feature, strings and datetimes encoded (:mod:`airline_hpo.data.table_encoding`); a column no model
    can use is named in one line. Runs on the CPU (the encoded table may then go to a GPU)."""
    if nonfinite not in NONFINITE_CHOICES:
        raise TrainerError(f"unknown nonfinite {nonfinite!r}", f"use one of {', '.join(NONFINITE_CHOICES)}")
    started = time.perf_counter()
    parquet, remote = _open_parquet(spec.uri)
    if parquet.metadata.num_rows == 0:
        raise TrainerError(f"data.uri {spec.uri} has no rows", "point data.uri at a table with rows")
    frame = parquet.read().to_pandas()
    label = _table_label(frame, spec)
    order = _time_order(frame, spec)
    unknown = [c for c in spec.exclude if c not in frame.columns]
    if unknown:
        raise TrainerError(f"data.exclude: {spec.uri} has no column {', '.join(unknown)}", "list its columns only")
    raw = frame.drop(columns=[spec.target.column])
    bad = table_encoding.unusable(raw)
    if bad:
        raise TrainerError(
            f"column(s) {', '.join(bad)} of {spec.uri} cannot be used as features (not numbers, text or datetimes)",
            "add them to data.exclude in the spec",
        )
    encoding = table_encoding.fit(raw)
    features = table_encoding.apply(raw, encoding)
    keep_before = len(label)
    features, label, dropped = handle_nonfinite(features, label, spec.uri, nonfinite)
    if dropped:
        keep = ~nonfinite_rows(table_encoding.apply(raw, encoding))[0]
        raw, order = raw[keep].reset_index(drop=True), None if order is None else order[keep]
    assert len(raw) == len(label) <= keep_before
    exclude = tuple(c for c in features.columns if encoding["sources"].get(c) in spec.exclude)
    fetched = remote.bytes_fetched if remote is not None else 0
    return Dataset(
        features, label, spec.uri, time.perf_counter() - started, dropped, fetched,
        target=str(spec.target), exclude=exclude, time_columns=spec.time_columns, order=order,
        encoding=encoding, raw=raw,
    )  # fmt: skip


def sample(data: Dataset, max_rows: int, seed: int) -> Dataset:
    """``max_rows`` rows drawn with ``seed`` from the whole file, in file order (the first rows of a
    prepared file are all January, so a prefix would be a biased sample)."""
    if not 0 < max_rows < data.rows:
        return data
    rows = np.sort(np.random.default_rng(seed).choice(data.rows, size=max_rows, replace=False))
    features = data.features.iloc[rows].reset_index(drop=True)
    label = check_label(pd.Series(data.label[rows]), f"the {max_rows} sampled rows of {data.source}")
    raw = None if data.raw is None else data.raw.iloc[rows].reset_index(drop=True)
    order = None if data.order is None else data.order[rows]
    return dataclasses.replace(data, features=features, label=label, raw=raw, order=order)


def load_dataset(
    fpath: str,
    max_rows: int = 0,
    *,
    seed: int = 0,
    nonfinite: str = "fail",
    engine: str = "sklearn",
    table: TableSpec | None = None,
) -> Dataset:
    """The dataset at ``fpath`` (local path or ``s3://``), read once per process. ``max_rows`` > 0 keeps a
    random sample of that many rows drawn with ``seed``; ``nonfinite`` is ``fail`` or ``drop``; ``engine``
    ``cuml`` keeps the features in GPU memory (cuDF)."""
    if max_rows < 0:
        raise TrainerError(f"max_rows must be 0 (all) or positive (got {max_rows})", "pass 0 or more")
    generic = table is not None and not table.is_airline
    key = (fpath, max_rows, seed if max_rows else 0, nonfinite, engine, table if generic else None)
    if key not in _CACHE:
        read = read_table(table, nonfinite) if generic else read_dataset(fpath, nonfinite, engine)
        _CACHE[key] = sample(read, max_rows, seed)
    return _CACHE[key]


def clear_cache() -> None:
    _CACHE.clear()
