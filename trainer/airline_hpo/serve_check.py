"""Serve the registered champion and ask it about a few flights (entry point ``serve_check``).

Starts ``mlflow models serve -m models:/<name>@<alias> --env-manager local`` on a free local port, waits for
``/ping``, POSTs sample flights to ``/invocations`` asking for both the label and the probability of a late
arrival (``"params": {"output": "both"}``), prints ON-TIME or LATE and the probability for each, then stops the
server (its whole process group). This is the seed's ``test_query.py``, done against the registry instead of a file.
With ``--url`` it asks an endpoint that is already serving (``make serve``) instead, as ``make demo`` does, signed
in with the stack's MLflow login (``MLFLOW_TRACKING_USERNAME``/``_PASSWORD``, what ``make env`` exports).
"""

from __future__ import annotations

import argparse
import datetime as dt
import os
import sys
import time
from collections.abc import Sequence
from pathlib import Path

import pandas as pd
import requests

from airline_hpo import errors
from airline_hpo.data.prepare import decode_code, encode_code
from airline_hpo.data.schema import FEATURES, LABEL_NAMES
from airline_hpo.errors import EXIT_FAILED, PORT, OneLineParser, TrainerError, child_log, run_cli
from airline_hpo.lifecycle import precheck
from airline_hpo.model import registry
from airline_hpo.serving.server import ModelServer, predict, private_socket_dir

#: The header the local endpoint (``make serve``) adds to every answer: the model version that answered.
VERSION_HEADER = "X-Model-Version"

#: Readable sample flights (carrier, number, origin, dest, date, scheduled dep/arr hhmm, minutes, miles).
SAMPLE_FLIGHTS = (
    ("AA", 33, "JFK", "LAX", "2013-06-03", 900, 1215, 330, 2475),
    ("UA", 1545, "EWR", "ORD", "2013-12-20", 1700, 1840, 140, 719),
    ("DL", 1919, "LGA", "ATL", "2013-03-12", 600, 850, 115, 762),
    ("B6", 507, "JFK", "FLL", "2013-07-19", 2030, 2335, 150, 1069),
    ("EV", 4401, "EWR", "DTW", "2013-02-08", 1600, 1810, 95, 488),
)


def sample_flights() -> pd.DataFrame:
    """The sample flights in the airline schema, encoded exactly as :mod:`airline_hpo.data.prepare` encodes data."""
    rows = []
    for carrier, number, origin, dest, day, dep, arr, minutes, miles in SAMPLE_FLIGHTS:
        date = dt.date.fromisoformat(day)
        rows.append(
            {
                "Year": date.year,
                "Month": date.month,
                "DayofMonth": date.day,
                "DayofWeek": date.isoweekday(),
                "CRSDepTime": dep,
                "CRSArrTime": arr,
                "UniqueCarrier": encode_code(carrier),
                "FlightNum": number,
                "ActualElapsedTime": minutes,
                "Origin": encode_code(origin),
                "Dest": encode_code(dest),
                "Distance": miles,
                "Diverted": 0,
            }
        )
    return pd.DataFrame(rows, columns=list(FEATURES)).astype("float32")


def describe(row: pd.Series) -> str:
    carrier, origin, dest = (decode_code(row[c]) for c in ("UniqueCarrier", "Origin", "Dest"))
    date = f"{int(row['Year'])}-{int(row['Month']):02d}-{int(row['DayofMonth']):02d}"
    return f"{carrier}{int(row['FlightNum']):<5} {origin}->{dest} {date} dep {int(row['CRSDepTime']):04d}"


def check_alias(model_name: str, alias: str) -> str:
    """The version the alias points to; a one-line error when there is none (nothing was registered yet)."""
    from mlflow import MlflowClient
    from mlflow.exceptions import MlflowException

    try:
        return MlflowClient().get_model_version_by_alias(model_name, alias).version
    except MlflowException as exc:
        raise TrainerError(
            f"no model version {model_name}@{alias} in the registry",
            "run the hyperopt entry point (it registers the best model and sets the alias) first",
        ) from exc


def _parser() -> OneLineParser:
    parser = OneLineParser(prog="serve_check", description=__doc__.splitlines()[0])
    parser.add_argument("--model-name", default="airline-delay")
    parser.add_argument("--alias", default=registry.CHAMPION_ALIAS)
    parser.add_argument(
        "--port",
        type=PORT,
        default=0,
        help="serve on this TCP port of 127.0.0.1, which any local user can reach "
        "(default 0: on a Unix socket only you can reach)",
    )
    parser.add_argument(
        "--timeout", type=errors.number(float, 0, 3600, above=True), default=180.0, help="seconds to wait for it"
    )
    parser.add_argument(
        "--url", default="none", help="ask the endpoint already serving there (make serve) instead of starting one"
    )
    return parser


def model_inputs(model_uri: str) -> list[str]:
    """The columns the model's signature names (a model trained without post-landing columns wants fewer)."""
    signature = registry.model_info(model_uri).signature
    return list(FEATURES) if signature is None else signature.inputs.input_names()


def model_threshold(model_uri: str) -> float | None:
    """The decision threshold the model's label uses (its pyfunc config); None for a model logged before
    thresholds were chosen (its label is ``probability > 0.5``)."""
    from mlflow.models.model import MODEL_CONFIG

    flavor = registry.model_info(model_uri).flavors.get("python_function", {})
    threshold = (flavor.get(MODEL_CONFIG) or {}).get("threshold")
    return None if threshold is None else float(threshold)


def check_answers(answers: list, threshold: float | None = None) -> list[tuple[int, float]]:
    """Each answer must carry a 0/1 label and a probability in [0, 1] that agree (label = probability >=
    ``threshold``, the model's decision threshold; ``> 0.5`` for a model without one)."""
    checked = []
    for answer in answers:
        try:
            label, probability = int(answer["label"]), float(answer["probability"])
        except (TypeError, KeyError, ValueError) as exc:
            raise TrainerError(
                f"the model answered {str(answer)[:80]} instead of a label and a probability",
                "register the model with this trainer (its pyfunc answers output=both)",
                EXIT_FAILED,
            ) from exc
        expected = int(probability > 0.5) if threshold is None else int(probability >= threshold)
        if label not in LABEL_NAMES or not 0.0 <= probability <= 1.0 or label != expected:
            raise TrainerError(
                f"the model answered label {label} with probability {probability}",
                "check the registered model",
                EXIT_FAILED,
            )
        checked.append((label, probability))
    return checked


def endpoint_login() -> tuple[str, str] | None:
    """The login the local endpoint asks for: the MLflow client's own (``MLFLOW_TRACKING_USERNAME`` and
    ``MLFLOW_TRACKING_PASSWORD``); None when they are not set."""
    username, password = os.environ.get("MLFLOW_TRACKING_USERNAME"), os.environ.get("MLFLOW_TRACKING_PASSWORD")
    return (username, password) if username and password else None


def wait_for_endpoint(url: str, timeout: float, login: tuple[str, str] | None = None) -> str:
    """Wait until a running endpoint answers ``/ping``; returns the model version it names ("?" if none)."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            response = requests.get(f"{url}/ping", timeout=5, auth=login)
            if response.status_code == 200:
                return response.headers.get(VERSION_HEADER, "?")
            if response.status_code == 401:
                raise TrainerError(
                    f"the endpoint {url} refused the login (HTTP 401)",
                    'set the stack\'s login: eval "$(make env)" (MLFLOW_TRACKING_USERNAME, MLFLOW_TRACKING_PASSWORD)',
                )
        except requests.RequestException:
            response = None
        if time.monotonic() >= deadline:
            seen = f"HTTP {response.status_code}" if response is not None else "no answer"
            raise TrainerError(
                f"the endpoint {url} did not answer /ping within {timeout:.0f}s ({seen})",
                "start it with `make serve` (or pass url=none to start a throwaway server)",
            )
        time.sleep(1)


def _print_answers(flights: pd.DataFrame, answers: list[tuple[int, float]]) -> None:
    for (_, row), (label, probability) in zip(flights.iterrows(), answers, strict=True):
        print(f"  {describe(row):40} {LABEL_NAMES[label]:8} P(late) = {probability:.2f}")


def main(argv: Sequence[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    precheck.check_tracking_uri()
    registry.check_tracking_server()
    version = check_alias(args.model_name, args.alias)
    model_uri = f"models:/{args.model_name}@{args.alias}"
    flights = sample_flights()
    inputs = flights[model_inputs(model_uri)]
    if args.url not in ("", "none"):
        url = args.url.rstrip("/")
        login = endpoint_login()
        served = wait_for_endpoint(url, args.timeout, login)
        print(f"asking the endpoint {url} (serving {args.model_name} version {served}; {args.alias} is {version})")
        served_uri = f"models:/{args.model_name}/{served}" if served.isdigit() else model_uri
        answers = predict(url, inputs, output="both", auth=login)
        _print_answers(flights, check_answers(answers, model_threshold(served_uri)))
        return 0
    server_log = child_log("serve_check-model-server")  # kept on failure: the error line points to it
    with private_socket_dir() as socket_dir:
        answers = _serve_and_ask(model_uri, version, args, flights, inputs, server_log, socket_dir)
    server_log.unlink(missing_ok=True)  # a clean run leaves no log file
    _print_answers(flights, answers)
    print("model server stopped")
    return 0


def _serve_and_ask(
    model_uri: str,
    version: str,
    args: argparse.Namespace,
    flights: pd.DataFrame,
    inputs: pd.DataFrame,
    server_log: Path,
    socket_dir: Path,
) -> list:
    """MLflow's scoring server for the check: on a Unix socket only this user can reach (every port we start needs
    a key, and MLflow's scoring server has none), or on the TCP port ``--port`` names, for a user who wants one."""
    socket_path = None if args.port else socket_dir / "model.sock"
    where = f"http://127.0.0.1:{args.port}" if args.port else f"a private socket ({socket_path})"
    print(f"serving {model_uri} (version {version}) on {where} ...", flush=True)
    with ModelServer(model_uri, "127.0.0.1", args.port, server_log, socket_path=socket_path) as server:
        started = time.perf_counter()
        server.wait_ready(args.timeout)
        print(
            f"model server ready after {time.perf_counter() - started:.1f}s; asking for label and probability "
            f"of {len(flights)} flights ({len(inputs.columns)} columns)"
        )
        return check_answers(server.predict(inputs, output="both"), model_threshold(model_uri))


if __name__ == "__main__":
    sys.exit(run_cli(main))
