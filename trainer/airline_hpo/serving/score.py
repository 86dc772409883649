"""Batch scoring (entry point ``score``): a parquet file of flights in, the model's answer for each flight out.

``python -m airline_hpo.serving.score --input <path|s3://> --output <path|s3://> --model models:/<name>@<alias>``

- The alias is resolved once, first: every row is scored by the same version, and the run records which.
- The input is read ``--batch-size`` rows at a time (pyarrow record batches, only the columns needed, ranged
  reads on S3): memory follows the batch size, not the table.
- The output holds the input's key columns (:data:`KEY_COLUMNS`, those present), ``probability`` (of a late
  arrival) and ``label`` exactly as the model answers them (``output=both``), one row per input row, in order.
- Rows the model cannot score (a missing or non-finite feature) are kept with empty ``probability``/``label``,
  counted (``rows_rejected``) and the first ones shown: never silently dropped.
- Bad input (missing or non-numeric columns, an unknown model, an unreadable file) is one line before any work,
  and no output: it is written to a temporary file and renamed (or uploaded) only when every batch succeeded.
- A run records the model version, the row counts, the timings and the rows/s.
"""

from __future__ import annotations

import contextlib
import os
import sys
import tempfile
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import mlflow
import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from airline_hpo.data import storage
from airline_hpo.errors import OneLineParser, TrainerError, run_cli
from airline_hpo.model import registry
from airline_hpo.serving.alias import alias_version

#: What names a flight in the output: date, carrier, flight number, route and scheduled departure.
KEY_COLUMNS = ("Year", "Month", "DayofMonth", "UniqueCarrier", "FlightNum", "Origin", "Dest", "CRSDepTime")
OUTPUT_COLUMNS = ("probability", "label")
DEFAULT_BATCH_SIZE = 100_000
#: Rejected rows shown in the run (and the summary line).
EXAMPLES = 5


@dataclass(frozen=True)
class ResolvedModel:
    uri: str  # models:/<name>/<version>: what scored every row
    name: str
    version: str
    inputs: list[str]


def resolve_model(model_uri: str) -> ResolvedModel:
    """``models:/<name>@<alias>`` or ``models:/<name>/<version>`` as a fixed version with its input columns."""
    fix = "pass -P model=models:/<name>@<alias> (e.g. models:/airline-delay@champion) naming a registered model"
    if not model_uri.startswith("models:/"):
        raise TrainerError(f"model {model_uri!r} is not a registry URI", fix)
    name, _, ref = model_uri.removeprefix("models:/").partition("@")
    if ref:
        version = alias_version(name, ref)
        if version is None:
            raise TrainerError(f"no model version {name}@{ref} in the registry", fix)
    else:
        name, _, version = name.partition("/")
        if not version.isdigit():
            raise TrainerError(f"model {model_uri!r} names neither an alias nor a version", fix)
    uri = f"models:/{name}/{version}"
    from mlflow.exceptions import MlflowException

    try:
        signature = registry.model_info(uri).signature
    except MlflowException as exc:
        raise TrainerError(f"model {uri} cannot be read from the registry ({exc.error_code})", fix) from exc
    if signature is None or signature.inputs is None or not signature.inputs.has_input_names():
        raise TrainerError(f"model {uri} declares no input columns", "register it with this trainer")
    return ResolvedModel(uri, name, str(version), signature.inputs.input_names())


def open_input(uri: str) -> pq.ParquetFile:
    """The input as a parquet file read lazily (S3: only the byte ranges pyarrow asks for)."""
    if storage.is_s3(uri):
        source = storage.S3RangeFile(uri)
    else:
        path = Path(uri).expanduser()
        if not path.is_file():
            raise TrainerError(f"input {uri} is not a file", "pass a parquet file (local path or s3://bucket/key)")
        source = path
    try:
        return pq.ParquetFile(source)
    except (pa.ArrowException, OSError) as exc:
        raise TrainerError(f"input {uri} is not a readable parquet file ({exc})", "pass a parquet file") from exc


def check_columns(schema: pa.Schema, inputs: list[str], uri: str, model: str) -> list[str]:
    """The key columns present; a one-line error when a feature the model needs is missing or not a number."""
    missing = [c for c in inputs if c not in schema.names]
    if missing:
        raise TrainerError(
            f"input {uri} lacks column(s) {', '.join(missing)} that {model} needs",
            "score a file in the airline schema (entry point prepare_data writes one)",
        )
    wrong = [
        f"{c} ({schema.field(c).type})"
        for c in inputs
        if not (pa.types.is_integer(schema.field(c).type) or pa.types.is_floating(schema.field(c).type))
    ]
    if wrong:
        raise TrainerError(
            f"input {uri}: column(s) {', '.join(wrong)} are not numbers",
            "encode carriers and airports as numbers, as prepare_data does (airline_hpo.data.prepare.encode_code)",
        )
    return [c for c in KEY_COLUMNS if c in schema.names]


@dataclass
class Tally:
    rows_in: int = 0
    rows_rejected: int = 0
    batches: int = 0
    seconds: dict[str, float] = field(default_factory=lambda: {"read": 0.0, "predict": 0.0, "write": 0.0})
    examples: list[dict] = field(default_factory=list)

    @contextlib.contextmanager
    def timed(self, phase: str) -> Iterator[None]:
        started = time.perf_counter()
        yield
        self.seconds[phase] += time.perf_counter() - started


def rejected_mask(x: pd.DataFrame) -> np.ndarray:
    """Rows with a missing or non-finite feature: the model's own checks (and cuML) refuse them."""
    values = x.to_numpy(dtype=np.float64, na_value=np.nan)
    return ~np.isfinite(values).all(axis=1)


def score_batch(model, batch: pd.DataFrame, inputs: list[str], keys: list[str], tally: Tally) -> pd.DataFrame:
    x = batch[inputs]
    bad = rejected_mask(x)
    probability = np.full(len(batch), np.nan)
    label = pd.array([pd.NA] * len(batch), dtype="Int64")
    if (~bad).any():
        answers = model.predict(x[~bad], params={"output": "both"})
        probability[~bad] = np.asarray(answers["probability"], dtype=np.float64)
        label[~bad] = np.asarray(answers["label"], dtype=np.int64)
    if bad.any():
        tally.rows_rejected += int(bad.sum())
        for index in np.flatnonzero(bad)[: max(0, EXAMPLES - len(tally.examples))]:
            row = batch.iloc[int(index)]
            empty = [c for c in inputs if pd.isna(row[c]) or not np.isfinite(float(row[c]))]
            tally.examples.append({"row": tally.rows_in + int(index), **{k: row[k] for k in keys}, "bad": empty})
    out = batch[keys].copy()
    out["probability"] = pd.arrays.FloatingArray(probability, mask=bad)
    out["label"] = label
    return out


def output_schema(schema: pa.Schema, keys: list[str]) -> pa.Schema:
    return pa.schema(
        [schema.field(k) for k in keys] + [pa.field("probability", pa.float64()), pa.field("label", pa.int64())]
    )


def _publish(tmp: Path, uri: str) -> None:
    """Make the finished file visible in one step: a rename on one filesystem, one upload to S3."""
    if storage.is_s3(uri):
        from botocore.exceptions import BotoCoreError, ClientError

        bucket, key = storage.split_s3_uri(uri)
        try:
            storage.s3_client().upload_file(str(tmp), bucket, key)
        except (BotoCoreError, ClientError) as exc:
            raise TrainerError(f"cannot write {uri}: {exc}", "check the bucket and the key's permissions") from exc
        return
    target = Path(uri).expanduser()
    target.parent.mkdir(parents=True, exist_ok=True)
    os.replace(tmp, target)


def _temp_output(uri: str) -> Path:
    """Beside a local output (so the final rename stays on one filesystem), else in the temp directory."""
    directory = None if storage.is_s3(uri) else Path(uri).expanduser().absolute().parent
    if directory is not None:
        directory.mkdir(parents=True, exist_ok=True)
    fd, name = tempfile.mkstemp(prefix=".score-", suffix=".parquet.tmp", dir=directory)
    os.close(fd)
    return Path(name)


def score_file(
    source: pq.ParquetFile, keys: list[str], output_uri: str, model: ResolvedModel, batch_size: int
) -> Tally:
    """Score every row of ``source`` into ``output_uri``; nothing appears there unless all of it succeeded (the
    model's download removed at the end: :func:`airline_hpo.model.registry.loaded_model`)."""
    columns = list(dict.fromkeys([*keys, *model.inputs]))
    tally = Tally()
    tmp = _temp_output(output_uri)
    try:
        with (
            registry.loaded_model(model.uri, "score-model") as pyfunc,
            pq.ParquetWriter(tmp, output_schema(source.schema_arrow, keys)) as writer,
        ):
            batches = source.iter_batches(batch_size=batch_size, columns=columns)
            while True:
                with tally.timed("read"):
                    record_batch = next(batches, None)
                    if record_batch is None:
                        break
                    frame = record_batch.to_pandas()
                with tally.timed("predict"):
                    out = score_batch(pyfunc, frame, model.inputs, keys, tally)
                with tally.timed("write"):
                    writer.write_table(pa.Table.from_pandas(out, schema=writer.schema, preserve_index=False))
                tally.rows_in += len(frame)
                tally.batches += 1
        with tally.timed("write"):
            _publish(tmp, output_uri)
    finally:
        tmp.unlink(missing_ok=True)
    return tally


def log_run(args, model: ResolvedModel, tally: Tally, seconds: float) -> str:
    """The run that says what scored what: parameters, model version, counts, timings, rejected examples."""
    registry.log_params_once(
        {"input": args.input, "output": args.output, "model": args.model, "batch_size": args.batch_size}
    )
    mlflow.set_tags({"score.model_uri": model.uri, "score.model_version": model.version})
    mlflow.log_metrics(
        {
            "rows_in": tally.rows_in,
            "rows_scored": tally.rows_in - tally.rows_rejected,
            "rows_rejected": tally.rows_rejected,
            "batches": tally.batches,
            "seconds_total": seconds,
            **{f"seconds_{phase}": value for phase, value in tally.seconds.items()},
            "rows_per_second": tally.rows_in / seconds if seconds else 0.0,
        }
    )
    if tally.examples:
        mlflow.log_dict({"rows_rejected": tally.rows_rejected, "first": tally.examples}, "rejected_rows.json")
    return mlflow.active_run().info.run_id


def _parser() -> OneLineParser:
    parser = OneLineParser(prog="score", description=__doc__.splitlines()[0])
    parser.add_argument("--input", required=True, help="parquet file: local path or s3://bucket/key")
    parser.add_argument("--output", required=True, help="parquet file to write: local path or s3://bucket/key")
    parser.add_argument("--model", default="models:/airline-delay@champion", help="models:/<name>@<alias> or /<v>")
    parser.add_argument("--batch-size", type=int, default=DEFAULT_BATCH_SIZE, help="rows per batch (memory bound)")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    if args.batch_size < 1:
        raise TrainerError(f"batch_size must be at least 1 (got {args.batch_size})", "pass -P batch_size=100000")
    if args.input == args.output:
        raise TrainerError("input and output are the same file", "write the scores to another path")
    storage.check_writable(args.output)
    # A progress bar per artifact download would bury the one line that matters.
    os.environ.setdefault("MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR", "false")
    registry.check_tracking_server()
    model = resolve_model(args.model)
    source = open_input(args.input)
    keys = check_columns(source.schema_arrow, model.inputs, args.input, model.uri)
    started = time.perf_counter()
    # Under `mlflow run` this is the run MLflow created (MLFLOW_RUN_ID); a failure ends it FAILED.
    with mlflow.start_run():
        tally = score_file(source, keys, args.output, model, args.batch_size)
        seconds = time.perf_counter() - started
        run_id = log_run(args, model, tally, seconds)
    rejected = ""
    if tally.rows_rejected:
        first = ", ".join(f"row {e['row']} ({', '.join(e['bad'])})" for e in tally.examples)
        rejected = f"; {tally.rows_rejected:,} row(s) not scored (missing or non-finite features), first: {first}"
    print(
        f"scored {tally.rows_in:,} rows with {model.name} version {model.version} into {args.output} in "
        f"{seconds:.1f}s ({tally.rows_in / max(seconds, 1e-9):,.0f} rows/s, {tally.batches} batch(es)); "
        f"run {run_id}{rejected}"
    )
    return 0


if __name__ == "__main__":
    sys.exit(run_cli(main))
