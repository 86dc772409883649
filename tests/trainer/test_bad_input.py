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
    ("max_evals < 1", lambda f: ["--fpath", f["nolabel"], "--max-evals", "0"], ["max_evals must be at least 1"]),
    ("unknown engine", lambda f: ["--fpath", f["nolabel"], "--engine", "tpu"], ["unknown engine 'tpu'"]),
    ("cuml without GPU", lambda f: ["--fpath", f["nolabel"], "--engine", "cuml"], ["needs an NVIDIA GPU"]),
    ("not a number", lambda f: ["--fpath", f["nolabel"], "--max-evals", "ten"], ["invalid int value", "--help"]),
    ("NaN features", lambda f: ["--fpath", f["nonfinite"]], ["in 30 of 3,000 rows (Distance 30 missing)", "drop"]),
    ("unknown nonfinite", lambda f: ["--fpath", f["nonfinite"], "--nonfinite", "skip"], ["invalid choice: 'skip'"]),
    ("quoted value", lambda f: ["--fpath", f["nolabel"], "--model-name", "''"], ["--model-name arrived quoted"]),
    ("unknown split", lambda f: ["--fpath", f["nolabel"], "--split", "flight"], ["unknown split 'flight'"]),
    ("unknown promote", lambda f: ["--fpath", f["nolabel"], "--promote", "yes"], ["unknown promote 'yes'"]),
    ("negative budget", lambda f: ["--fpath", f["nolabel"], "--early-stop", "-1"], ["early_stop must be 0"]),
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
