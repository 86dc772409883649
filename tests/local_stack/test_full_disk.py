"""A full disk under the state directory: `check` used to hang for minutes (the MLflow server waits on a database
that cannot write); now it names the full disk in one line within seconds, `status` adds the disk's line (exit 1),
and once space is freed `up` and `check` recover. A search whose stack's disk fills up mid-way used to stop with
"Read timed out" (or "cannot reach the MLflow tracking server"); now its one line names the full disk and the fix,
and every finished trial is kept in the journal and replayed once space is freed.

The small disk is a 300 MiB tmpfs mounted for the test (root, as CI runs) and unmounted afterwards.
"""

from __future__ import annotations

import errno
import os
import re
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from airline_hpo.data.prepare import load_flights, sample_rows, to_airline_schema
from mlflow import MlflowClient
from mlflow.entities import ViewType

from local_stack import LocalStack
from tests.local_stack.stack_cli import assert_one_line_error, run_cli
from tests.stack_fixtures import started_stack_cli

pytestmark = pytest.mark.integration

TRAINER_DIR = Path(__file__).resolve().parents[2] / "trainer"


@pytest.fixture(scope="module")
def small_disk(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    mount = tmp_path_factory.mktemp("small-disk")
    subprocess.run(["mount", "-t", "tmpfs", "-o", "size=300m,mode=0700", "tmpfs", str(mount)], check=True)
    try:
        yield mount
    finally:
        subprocess.run(["umount", "--lazy", str(mount)], check=True)


@pytest.fixture(scope="module")
def stack_on_small_disk(small_disk: Path) -> Iterator[LocalStack]:
    with started_stack_cli(small_disk / "stack") as stack:
        yield stack


def _fill(disk: Path) -> Path:
    filler = disk / "filler"
    chunk = b"\0" * (1 << 20)
    with filler.open("wb") as handle:
        try:
            while True:
                handle.write(chunk)
                handle.flush()
        except OSError as exc:
            assert exc.errno == errno.ENOSPC
    return filler


def test_check_names_a_full_disk_at_once_and_the_stack_recovers(stack_on_small_disk, small_disk):
    stack = stack_on_small_disk
    filler = _fill(small_disk)
    try:
        checked = run_cli(stack, "check", timeout=150)  # a hang would raise TimeoutExpired here
        assert_one_line_error(checked, "disk holding", str(stack.settings.state_dir), "is full", "free space")
        status = run_cli(stack, "status", timeout=120)
        assert status.returncode == 1, status  # something is wrong: a script or supervisor must see it
        disk_lines = [line for line in status.stdout.splitlines() if line.startswith("disk")]
        assert len(disk_lines) == 1 and "FULL" in disk_lines[0], status.stdout
    finally:
        filler.unlink()
    assert run_cli(stack, "up", timeout=240).returncode == 0
    checked = run_cli(stack, "check", timeout=150)
    assert checked.returncode == 0, checked.stderr
    status = run_cli(stack, "status")
    assert status.returncode == 0, status
    assert "disk" not in {line.split()[0] for line in status.stdout.splitlines() if line}


def _trials(env: dict[str, str], parent_id: str) -> list:
    client = MlflowClient(env["MLFLOW_TRACKING_URI"])
    experiment = client.get_experiment_by_name(env["MLFLOW_EXPERIMENT_NAME"])
    if experiment is None:
        return []
    runs = client.search_runs([experiment.experiment_id], run_view_type=ViewType.ALL, max_results=1000)
    return [r for r in runs if r.data.tags.get("mlflow.parentRunId") == parent_id or not parent_id]


def test_a_search_names_the_full_disk_and_keeps_every_finished_trial(
    stack_on_small_disk, small_disk, tmp_path, monkeypatch
):
    """The issue's case: the state directory's disk fills up mid-search. The search ends in one line naming the
    full disk and the fix (free space there, `make up`, resume), not "Read timed out"; its finished trials are in
    the journal (off that disk), and after freeing space and `up` the replay brings every one of them back."""
    stack = stack_on_small_disk
    data = tmp_path / "airline.parquet"
    sample_rows(to_airline_schema(load_flights()), 3000, seed=1).to_parquet(data, index=False)
    env = {k: v for k, v in os.environ.items() if not k.startswith(("MLFLOW_", "AIRLINE_HPO_", "LOCAL_STACK_"))}
    env.update(
        stack.client_env(),
        PYTHONPATH=str(TRAINER_DIR),
        MLFLOW_EXPERIMENT_NAME=f"full-disk-{uuid.uuid4().hex[:8]}",
        AIRLINE_HPO_JOURNAL_DIR=str(tmp_path / "journal"),
        AIRLINE_HPO_LOG_DIR=str(tmp_path / "logs"),
        AIRLINE_HPO_TRACKING_TIMEOUT="10",
    )
    for name in ("MLFLOW_TRACKING_URI", "MLFLOW_TRACKING_USERNAME", "MLFLOW_TRACKING_PASSWORD"):
        monkeypatch.setenv(name, env[name])
    argv = [sys.executable, "-m", "airline_hpo.search", "--fpath", str(data), "--max-evals", "60"]
    argv += ["--max-rows", "3000", "--trees-max", "40", "--depth-max", "8", "--model-name", "none"]
    search = subprocess.Popen(argv, cwd=TRAINER_DIR, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        deadline = time.monotonic() + 180
        while sum(t.info.status == "FINISHED" for t in _trials(env, "")) < 3:
            assert search.poll() is None and time.monotonic() < deadline, search.communicate()
            time.sleep(0.5)
        filler = _fill(small_disk)
        try:
            _stdout, stderr = search.communicate(timeout=300)
        finally:
            filler.unlink()
    finally:
        if search.poll() is None:
            search.kill()
            search.communicate()
    assert search.returncode == 1, stderr[-3000:]
    assert "Traceback" not in stderr
    lines = [part.strip() for line in stderr.splitlines() for part in line.split("\r") if part.startswith("error:")]
    assert len(lines) == 1, stderr[-3000:]
    line = lines[0]
    assert f"the disk holding the stack's state directory {stack.settings.state_dir} is full" in line, line
    assert f"free space under {stack.settings.state_dir}" in line and "make up" in line, line
    kept = re.search(r"(\d+) finished trial\(s\) kept in (\S+\.jsonl).*resume_run_id=(\w+)", line)
    assert kept, line
    journaled, parent_id = int(kept.group(1)), kept.group(3)

    assert run_cli(stack, "up", timeout=240).returncode == 0
    replay = [sys.executable, "-m", "airline_hpo.lifecycle.replay", parent_id]
    replayed = subprocess.run(replay, cwd=TRAINER_DIR, env=env, capture_output=True, text=True, timeout=180)
    assert replayed.returncode == 0, replayed.stderr[-3000:]
    trials = _trials(env, parent_id)
    finished = [t.data.tags["trial_id"] for t in trials if t.info.status == "FINISHED"]
    assert len(finished) == len(set(finished)) >= journaled, (len(finished), journaled)
    assert not [t for t in trials if t.info.status == "RUNNING"]
