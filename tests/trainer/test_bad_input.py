"""Every bad input of the ``hyperopt`` entry point: non-zero exit, ONE line naming the problem and the fix,
before any long work (no run is created, no data is read when the problem is elsewhere)."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import pandas as pd
import pytest
from airline_hpo.data.schema import LABEL
from airline_hpo.errors import run_cli
from airline_hpo.search import driver
from mlflow import MlflowClient

TRAINER_DIR = Path(__file__).resolve().parents[2] / "trainer"


def _free_port() -> int:
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _bad_files(tmp_path, small_airline) -> dict[str, str]:
    good = pd.read_parquet(small_airline)
    (tmp_path / "empty.parquet").write_bytes(b"")
    (tmp_path / "garbage.parquet").write_bytes(b"PAR1 but not really")
    files = {"missing": str(tmp_path / "nope.parquet")}
    for name, table in {
        "nolabel": good.drop(columns=[LABEL]),
        "nocolumn": good.drop(columns=["Distance"]),
        "oneclass": good.assign(**{LABEL: 0}),
        "nonfinite": good.assign(Distance=good["Distance"].where(good.index % 100 != 7)),
    }.items():
        table.to_parquet(tmp_path / f"{name}.parquet", index=False)
        files[name] = str(tmp_path / f"{name}.parquet")
    files["empty"] = str(tmp_path / "empty.parquet")
    files["unreadable"] = str(tmp_path / "garbage.parquet")
    return files


CASES = [
    # (name, argv builder, words in the error line)
    ("missing fpath", lambda f: ["--fpath", f["missing"]], ["does not exist", "prepare"]),
    ("unreadable fpath", lambda f: ["--fpath", f["unreadable"]], ["not a readable parquet"]),
    ("empty file", lambda f: ["--fpath", f["empty"]], ["is empty"]),
    ("no label", lambda f: ["--fpath", f["nolabel"]], ["no label column 'ArrDelayBinary'"]),
    ("no required column", lambda f: ["--fpath", f["nocolumn"]], ["lacks required column(s) Distance"]),
    ("single-class label", lambda f: ["--fpath", f["oneclass"]], ["one class only"]),
    ("max_evals < 1", lambda f: ["--fpath", f["nolabel"], "--max-evals", "0"], ["--max-evals: must be at least 1"]),
    ("unknown engine", lambda f: ["--fpath", f["nolabel"], "--engine", "tpu"], ["unknown engine 'tpu'"]),
    ("cuml without GPU", lambda f: ["--fpath", f["nolabel"], "--engine", "cuml"], ["needs an NVIDIA GPU"]),
    ("not a number", lambda f: ["--fpath", f["nolabel"], "--max-evals", "ten"], ["--max-evals: 'ten' is not a number"]),
    ("NaN features", lambda f: ["--fpath", f["nonfinite"]], ["in 30 of 3,000 rows (Distance 30 missing)", "drop"]),
    ("unknown nonfinite", lambda f: ["--fpath", f["nonfinite"], "--nonfinite", "skip"], ["invalid choice: 'skip'"]),
    ("quoted value", lambda f: ["--fpath", f["nolabel"], "--model-name", "''"], ["--model-name arrived quoted"]),
    ("unknown split", lambda f: ["--fpath", f["nolabel"], "--split", "flight"], ["unknown split 'flight'"]),
    ("unknown promote", lambda f: ["--fpath", f["nolabel"], "--promote", "yes"], ["unknown promote 'yes'"]),
    ("negative budget", lambda f: ["--fpath", f["nolabel"], "--early-stop", "-1"], ["--early-stop: must be at least"]),
]


@pytest.mark.integration
@pytest.mark.parametrize(("name", "argv", "words"), CASES, ids=[c[0] for c in CASES])
def test_bad_input_is_one_line_and_creates_nothing(name, argv, words, stack_env, tmp_path, small_airline, capsys,
                                                   monkeypatch):  # fmt: skip
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "")  # "no GPU", on any machine
    started = time.perf_counter()
    assert run_cli(driver.main, argv(_bad_files(tmp_path, small_airline))) == 2
    captured = capsys.readouterr()
    lines = captured.err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: ") and "; " in lines[0], captured.err
    for word in words:
        assert word in lines[0]
    assert captured.out == ""
    assert time.perf_counter() - started < 10
    # nothing was started: the experiment has no runs (it need not even exist)
    experiment = MlflowClient().get_experiment_by_name(stack_env.experiment)
    assert experiment is None or MlflowClient().search_runs([experiment.experiment_id]) == []


def _run_module(module: str, args: list[str], env: dict[str, str]) -> subprocess.CompletedProcess:
    path = os.pathsep.join([str(TRAINER_DIR), os.environ.get("PYTHONPATH", "")])
    return subprocess.run(
        [sys.executable, "-m", module, *args],
        cwd=TRAINER_DIR,
        env={**os.environ, **env, "PYTHONPATH": path},
        capture_output=True,
        text=True,
        timeout=120,
    )


def test_unreachable_tracking_server_fails_fast(small_airline):
    """A real process: exit status 2, one line on stderr, no traceback, long before MLflow's retries end."""
    started = time.perf_counter()
    env = {"MLFLOW_TRACKING_URI": f"http://127.0.0.1:{_free_port()}"}
    result = _run_module("airline_hpo.search", ["--fpath", str(small_airline), "--max-evals", "1"], env)
    assert result.returncode == 2
    assert result.stderr.strip().splitlines() == [result.stderr.strip()]
    assert result.stderr.startswith("error: cannot reach the MLflow tracking server at http://127.0.0.1:")
    assert "make up" in result.stderr and "Traceback" not in result.stderr
    assert time.perf_counter() - started < 60


def test_prepare_process_exit_status(tmp_path):
    result = _run_module("airline_hpo.data.prepare", ["--output", str(tmp_path / "x.parquet"), "--rows", "-1"], {})
    assert result.returncode == 2 and result.stderr.count("\n") == 1 and "Traceback" not in result.stderr


# --- every numeric option of every entry point: NaN, infinity, sign, range, refused by name at parse time ------

from airline_hpo import demo, serve_check, train  # noqa: E402
from airline_hpo.data import prepare  # noqa: E402

#: Each entry point's parser and main; the options are read from the parser itself, so a new numeric option
#: without a checked type fails ``test_every_numeric_option_has_a_checked_type``.
ENTRY_POINTS = {
    "hyperopt": (driver._parser, driver.main),
    "train": (train._parser, train.main),
    "prepare_data": (prepare._parser, prepare.main),
    "serve_check": (serve_check._parser, serve_check.main),
    "demo": (demo._parser, demo.main),
}


def _numeric_options():
    for entry, (parser, _main) in ENTRY_POINTS.items():
        for action in parser()._actions:
            if action.option_strings and hasattr(action.type, "kind"):
                yield entry, action.option_strings[0], action.type


def _bad_values(kind) -> list[tuple[str, str]]:
    """(value, words of the refusal): NaN, both infinities, a fraction for an integer, just outside each bound."""
    values = [("nan", "finite"), ("inf", "finite"), ("-inf", "finite"), ("ten", "not a number")]
    if kind.kind is int:
        values.append(("1.5", "whole number"))
    if kind.low is not None:
        values.append((str(kind.low if kind.above else (kind.low - 1 if kind.kind is int else kind.low - 0.5)),
                       "above" if kind.above else "at least"))  # fmt: skip
    if kind.high is not None:
        values.append((str(kind.high if kind.below else (kind.high + 1 if kind.kind is int else kind.high * 2)),
                       "below" if kind.below else "at most"))  # fmt: skip
    return values


NUMERIC_CASES = [
    (entry, option, value, words) for entry, option, kind in _numeric_options() for value, words in _bad_values(kind)
]


def test_every_numeric_option_has_a_checked_type():
    """No numeric option is a bare ``int``/``float`` (which accept nan, inf and any sign)."""
    bare = [
        f"{entry} {action.option_strings[0]}"
        for entry, (parser, _main) in ENTRY_POINTS.items()
        for action in parser()._actions
        if action.type in (int, float)
    ]
    assert bare == []
    assert len({(e, o) for e, o, _v, _w in NUMERIC_CASES}) >= 40  # hyperopt 18, train 12, prepare 3, serve 2, demo 5


@pytest.mark.parametrize(("entry", "option", "value", "words"), NUMERIC_CASES,
                         ids=[f"{e}{o}={v}" for e, o, v, _w in NUMERIC_CASES])  # fmt: skip
def test_a_bad_number_is_refused_by_name_before_anything_starts(entry, option, value, words, capsys, monkeypatch):
    """In-process (400-odd cases, 2 cores): parse-time refusal, so no stack is needed and none is contacted."""
    monkeypatch.setenv("MLFLOW_TRACKING_URI", f"http://127.0.0.1:{_free_port()}")  # nothing listens there
    required = ["--fpath", "x"] if entry in {"hyperopt", "train"} else []
    assert run_cli(ENTRY_POINTS[entry][1], [*required, f"{option}={value}"]) == 2  # "-inf" is no option
    captured = capsys.readouterr()
    lines = captured.err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith(f"error: {entry}: argument {option}: "), captured.err
    assert words in lines[0] and value in lines[0], lines[0]
    assert captured.out == ""


#: The issue's cases, as ``mlflow run -P name=value`` passes them (MLflow's own project loader builds the
#: command; MLflow checks nothing of a ``float`` parameter and passes it on verbatim).
MLFLOW_CASES = [
    ("hyperopt", {"seed": "99999999999"}, "argument --seed: must be at most 4294967295"),
    ("hyperopt", {"seed": "-1"}, "argument --seed: must be at least 0"),
    ("hyperopt", {"timeout_minutes": "nan"}, "argument --timeout-minutes: must be a finite number"),
    ("hyperopt", {"gpus_per_trial": "inf"}, "argument --gpus-per-trial: must be a finite number"),
    ("hyperopt", {"cpus_per_trial": "nan", "executor": "ray"}, "argument --cpus-per-trial: must be a finite"),
    ("hyperopt", {"max_evals": "20.0"}, None),  # a whole number written as a float is a count: accepted
    ("train", {"max_features": "nan"}, "argument --max-features: must be a finite number"),
    ("prepare_data", {"late_after": "nan"}, "argument --late-after: must be a finite number"),
    ("prepare_data", {"rows": "-5"}, "argument --rows: must be at least 0"),
    ("serve_check", {"timeout": "-5"}, "argument --timeout: must be above 0"),
]


@pytest.mark.integration
@pytest.mark.parametrize(("entry", "params", "words"), MLFLOW_CASES, ids=[f"{c[0]}-{c[1]}" for c in MLFLOW_CASES])
def test_mlflow_run_parameters_are_refused_by_name_and_create_nothing(entry, params, words, stack_env, tmp_path,
                                                                       small_airline):  # fmt: skip
    """A real process with the argv ``mlflow run`` builds, against the real stack: exit 2, one line naming the
    option, no run in the experiment (``--seed 99999999999`` used to leave a parent and two FAILED trials)."""
    import shlex

    from airline_hpo.demo import entry_point_command

    fpath = {"fpath": str(small_airline)} if entry in {"hyperopt", "train"} else {}
    extra = {"output": str(tmp_path / "out.parquet")} if entry == "prepare_data" else {}
    if words is None:  # the accepted case: a search that the bad value must not stand in for; just parse it
        argv = shlex.split(entry_point_command(entry, {**fpath, **params, "model_name": "none"}))
        parsed = driver._parser().parse_args(argv[3:])
        assert parsed.max_evals == 20 and isinstance(parsed.max_evals, int)
        return
    argv = shlex.split(entry_point_command(entry, {**fpath, **extra, **params}))
    assert argv[:2] == ["python", "-m"]
    # were the check ever lost, a Ray search must not start a local Ray outside a network namespace (design
    # notes §3b): it is pointed at a port where nothing listens
    done = _run_module(argv[2], argv[3:], {**stack_env.env, "RAY_ADDRESS": f"127.0.0.1:{_free_port()}"})
    assert done.returncode == 2, done.stderr[-2000:]
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1 and words in lines[0] and "Traceback" not in done.stderr, done.stderr[-2000:]
    experiment = MlflowClient().get_experiment_by_name(stack_env.experiment)
    assert experiment is None or MlflowClient().search_runs([experiment.experiment_id]) == []
    assert not (tmp_path / "out.parquet").exists()


@pytest.mark.parametrize("entry", ["airline_hpo.search", "airline_hpo.train", "airline_hpo.serve_check"])
def test_a_tracking_uri_that_is_not_a_url_is_named(entry, small_airline):
    args = ["--fpath", str(small_airline)] if entry != "airline_hpo.serve_check" else []
    done = _run_module(entry, args, {"MLFLOW_TRACKING_URI": "http://not a uri"})
    assert done.returncode == 2
    assert done.stderr.strip().splitlines() == [
        "error: MLFLOW_TRACKING_URI='http://not a uri' is not a valid URL (a host without spaces needed); set "
        "MLFLOW_TRACKING_URI to http://<host>:<port> (`make env` prints the local stack's)"
    ]
