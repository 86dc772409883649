"""A search while parts of the stack fail (``airline_hpo.lifecycle.outage`` and the journal): the tracking server,
its database or the artifact store killed for a moment or for good mid-search, or down before it starts; the retry
budget that bounds one call; a client glitch retried. The tests that kill services use a stack of this module's own
(free ports, temporary state), so the session's stack survives.
"""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from mlflow import MlflowClient
from search_process import (
    TRAINER_DIR,
    assert_one_line,
    experiment_runs,
    parents_and_trials,
    run_search,
    search_env,
    start_search,
    tracking_client,
    wait_for_finished_trials,
)

from local_stack import LocalStack
from local_stack.processes import free_ports
from tests.stack_fixtures import started_stack

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def own_stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalStack]:
    with started_stack(tmp_path_factory.mktemp("fault-stack")) as stack:
        yield stack


def _service(stack: LocalStack, name: str):
    from local_stack.stack import SERVICES

    return stack.process(next(svc for svc in SERVICES if svc.name == name))


def _kill_group(stack: LocalStack, name: str) -> None:
    """kill -9 of a service's whole process group (what an OOM kill or a node loss does)."""
    import psutil

    process = _service(stack, name)
    pid = process.running_pid()
    assert pid is not None, f"{name} is not running"
    members = [psutil.Process(p.pid) for p in psutil.process_iter() if _pgid(p.pid) == pid]
    os.killpg(pid, signal.SIGKILL)
    psutil.wait_procs(members, timeout=10)


def _pgid(pid: int) -> int | None:
    try:
        return os.getpgid(pid)
    except ProcessLookupError:
        return None


@pytest.mark.parametrize("service", ["mlflow", "postgres", "s3"])
def test_a_short_outage_loses_no_trial(own_stack, small_airline, tmp_path, service):
    """kill -9 of the tracking server's, its database's or the artifact store's process group mid-search,
    restarted 5 s later: every trial finishes, and the model and plots (artifact writes) land after it."""
    env = search_env(own_stack.client_env(), tmp_path)
    proc = start_search(env, small_airline, 10)
    wait_for_finished_trials(env, proc, 2)
    _kill_group(own_stack, service)
    time.sleep(5)
    own_stack.up(log=lambda _msg: None)  # restarts the dead server only
    _stdout, stderr = proc.communicate(timeout=300)
    assert proc.returncode == 0, stderr[-3000:]
    assert "Traceback" not in stderr
    parents, trials = parents_and_trials(experiment_runs(env))
    assert [p.info.status for p in parents] == ["FINISHED"]
    assert len(trials) == 10 and {t.info.status for t in trials} == {"FINISHED"}


def test_a_long_outage_ends_in_one_line_and_the_journal_brings_every_trial_back(own_stack, small_airline, tmp_path):
    env = search_env(own_stack.client_env(), tmp_path, AIRLINE_HPO_TRACKING_TIMEOUT="10")
    proc = start_search(env, small_airline, 60)
    wait_for_finished_trials(env, proc, 2)
    _kill_group(own_stack, "mlflow")
    killed = time.monotonic()
    try:
        _stdout, stderr = proc.communicate(timeout=90)
    finally:
        own_stack.up(log=lambda _msg: None)
    assert time.monotonic() - killed < 90
    assert proc.returncode == 1
    line = assert_one_line(stderr)
    assert "cannot reach the MLflow tracking server" in line, line
    match = re.search(r"(\d+) finished trial\(s\) kept in (\S+\.jsonl).*resume_run_id=(\w+)", line)
    assert match, line
    kept, journal, parent_id = int(match.group(1)), Path(match.group(2)), match.group(3)
    assert journal.exists() and kept >= 1
    assert "full log: " in line and Path(line.rsplit("full log: ", 1)[1].rstrip(")")).exists()

    replay = [sys.executable, "-m", "airline_hpo.lifecycle.replay", parent_id]
    first = subprocess.run(replay, cwd=TRAINER_DIR, env=env, capture_output=True, text=True, timeout=120)
    assert first.returncode == 0, first.stderr[-3000:]
    parents, trials = parents_and_trials(experiment_runs(env))
    assert [p.info.status for p in parents] == ["FAILED"]
    assert "tracking outage" in parents[0].data.tags["stop_reason"]
    assert [t for t in trials if t.info.status == "RUNNING"] == []
    trial_ids = [t.data.tags["trial_id"] for t in trials if t.info.status == "FINISHED"]
    assert len(trial_ids) == len(set(trial_ids)) >= 2 + 0  # every trial once
    assert all("loss" in t.data.metrics for t in trials if t.info.status == "FINISHED")
    again = subprocess.run(replay, cwd=TRAINER_DIR, env=env, capture_output=True, text=True, timeout=120)
    assert again.returncode == 0 and len(experiment_runs(env)) == len(parents) + len(trials), "replay is not idempotent"


@pytest.mark.parametrize(("service", "part"), [("s3", "artifact store"), ("postgres", "database")])
def test_a_down_part_of_the_stack_is_named_before_any_run(own_stack, small_airline, tmp_path, service, part):
    env = search_env(own_stack.client_env(), tmp_path)
    _service(own_stack, service).stop()
    try:
        done = run_search(env, small_airline)
    finally:
        own_stack.up(log=lambda _msg: None)
    assert done.returncode == 2
    line = assert_one_line(done.stderr)
    assert part in line, line
    client = tracking_client(env)
    assert client.get_experiment_by_name(env["MLFLOW_EXPERIMENT_NAME"]) is None or experiment_runs(env) == []


def test_the_retry_budget_bounds_how_long_one_call_waits_for_a_dead_server(tmp_path):
    """MLflow's defaults wait about 4.2 minutes per call; the budget (6 s here) is what a call now waits."""
    probe = (
        "import time, airline_hpo.lifecycle.outage as o; o.apply(6)\n"
        "from mlflow import MlflowClient; t = time.monotonic()\n"
        "try: MlflowClient().search_experiments(max_results=1)\n"
        "except Exception as e: print(round(time.monotonic() - t, 1), type(e).__name__)"
    )
    port = free_ports(1)[0]
    env = search_env({}, tmp_path, MLFLOW_TRACKING_URI=f"http://127.0.0.1:{port}")
    done = subprocess.run(
        [sys.executable, "-c", probe], cwd=TRAINER_DIR, env=env, capture_output=True, text=True, timeout=120
    )
    seconds, error = done.stdout.split()
    assert error == "MlflowException" and 5.5 <= float(seconds) < 15, done.stdout + done.stderr[-2000:]


class _GlitchingClient(MlflowClient):
    """The real client, with MLflow 3.17's telemetry race injected into the first run creation."""

    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.glitches = 0

    def create_run(self, *args, **kwargs):
        if self.glitches:
            self.glitches -= 1
            raise KeyError("_MLFLOW_TELEMETRY_SESSION_ID")
        return super().create_run(*args, **kwargs)


def test_a_client_glitch_in_a_trial_write_is_retried(stack_env, small_airline):
    from airline_hpo.data import loading as data_mod
    from airline_hpo.data import splits
    from airline_hpo.model.engines import ForestParams, SklearnEngine
    from airline_hpo.search.trials import InProcessTrialRunner, TrialSpec

    client = _GlitchingClient()
    experiment_id = client.create_experiment(stack_env.experiment)
    parent = client.create_run(experiment_id).info.run_id
    client.glitches = 1  # the trial's creation fails once, as MLflow 3.17's telemetry race made it
    split = splits.make_split(data_mod.load_dataset(str(small_airline)), seed=0)
    runner = InProcessTrialRunner(SklearnEngine(), split, 0, experiment_id, parent, client=client)
    outcome = runner.run(TrialSpec(1, ForestParams(n_estimators=3, max_depth=3)))
    runner.flush()
    assert client.glitches == 0
    trial = client.get_run(outcome.run_id)
    assert trial.info.status == "FINISHED" and trial.data.tags["mlflow.parentRunId"] == parent
