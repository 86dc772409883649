"""A search stopped by a signal, as a user meets it: SIGTERM or SIGINT to the driver (an eviction, `kubectl delete`,
Ctrl-C), a trial that outlasts the stop's grace budget, SIGTERM to the ``train`` entry point, and a pipeline whose
reader dies first. Each runs the entry point as a process against the session's stack and checks the exit status,
the one line the user reads, and that no run is left RUNNING (``airline_hpo.lifecycle.shutdown``).
"""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import time

import pytest
from search_process import (
    SEARCH_ARGS,
    TRAINER_DIR,
    assert_one_line,
    experiment_runs,
    parents_and_trials,
    search_env,
    start_search,
    wait_for_finished_trials,
)

pytestmark = pytest.mark.integration


@pytest.mark.parametrize(("sig", "code"), [(signal.SIGTERM, 143), (signal.SIGINT, 130)])
def test_a_signal_stops_the_search_cleanly_and_resumably(local_stack, small_airline, tmp_path, sig, code):
    env = search_env(local_stack.env, tmp_path)
    proc = start_search(env, small_airline, 40)
    wait_for_finished_trials(env, proc, 2)
    sent = time.monotonic()
    proc.send_signal(sig)
    _stdout, stderr = proc.communicate(timeout=30)
    assert time.monotonic() - sent < 30, "the driver outlived the Job's default grace period"
    assert proc.returncode == code
    line = assert_one_line(stderr)
    match = re.fullmatch(rf"stopped by {sig.name} after (\d+) of 40 trials; resume with -P resume_run_id=(\w+)", line)
    assert match, line
    parents, trials = parents_and_trials(experiment_runs(env))
    assert [p.info.run_id for p in parents] == [match.group(2)]
    assert parents[0].info.status == "KILLED"
    assert parents[0].data.tags["stop_reason"] == f"signal {sig.name}"
    assert [t for t in trials if t.info.status == "RUNNING"] == []
    assert sum(t.info.status == "FINISHED" for t in trials) == int(match.group(1)) < 40


def test_a_trial_that_outlasts_the_grace_budget_is_marked_killed(local_stack, airline_table, tmp_path):
    """The running trial cannot finish in time: the watchdog marks it and the parent KILLED and exits anyway."""
    big = tmp_path / "big.parquet"
    airline_table.head(120_000).to_parquet(big, index=False)
    env = search_env(local_stack.env, tmp_path, AIRLINE_HPO_STOP_GRACE="3")
    argv = [sys.executable, "-m", "airline_hpo.search", "--fpath", str(big), "--max-evals", "5", "--model-name"]
    proc = subprocess.Popen(
        [*argv, "none", "--trees-max", "300", "--depth-max", "20", "--max-samples-min", "1.0"],
        cwd=TRAINER_DIR, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip
    deadline = time.monotonic() + 120
    while not any(t.info.status == "RUNNING" for t in parents_and_trials(experiment_runs(env))[1]):
        assert proc.poll() is None and time.monotonic() < deadline, "no trial started"
        time.sleep(0.3)
    sent = time.monotonic()
    proc.send_signal(signal.SIGTERM)
    _stdout, stderr = proc.communicate(timeout=30)
    assert time.monotonic() - sent < 15
    assert proc.returncode == 143
    line = assert_one_line(stderr)
    assert (
        line.startswith("stopped by SIGTERM after 0 of 5 trials; resume with -P resume_run_id=") and "cut short" in line
    )
    parents, trials = parents_and_trials(experiment_runs(env))
    assert [p.info.status for p in parents] == ["KILLED"]
    assert [t.info.status for t in trials] == ["KILLED"]


def test_sigterm_to_the_train_entry_point_marks_its_run_killed(local_stack, airline_table, tmp_path):
    big = tmp_path / "big.parquet"
    airline_table.head(120_000).to_parquet(big, index=False)
    env = search_env(local_stack.env, tmp_path, AIRLINE_HPO_STOP_GRACE="2")
    argv = [sys.executable, "-m", "airline_hpo.train", "--fpath", str(big), "--n-estimators", "300"]
    proc = subprocess.Popen(
        [*argv, "--max-depth", "20"], cwd=TRAINER_DIR, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
        text=True,
    )  # fmt: skip
    deadline = time.monotonic() + 120
    while not experiment_runs(env):
        assert proc.poll() is None and time.monotonic() < deadline, "the run was never created"
        time.sleep(0.3)
    proc.send_signal(signal.SIGTERM)
    _stdout, stderr = proc.communicate(timeout=30)
    assert proc.returncode == 143
    line = assert_one_line(stderr)
    [run] = experiment_runs(env)
    assert line.startswith(f"stopped by SIGTERM; run {run.info.run_id} marked KILLED")
    assert run.info.status == "KILLED" and run.data.tags["stop_reason"] == "signal SIGTERM"


def test_a_broken_output_pipe_is_no_outage_and_the_search_still_ends_killed(local_stack, small_airline, tmp_path):
    """``python -m airline_hpo.search ... 2>&1 | cat``, then SIGTERM to the process group (a terminal's Ctrl-C,
    or a supervisor stopping ``mlflow run ... | tee log``): the reader dies first, the search's next write gets
    ``BrokenPipeError``. That used to read as "the tracking server failed a call" and left the parent RUNNING."""
    env = search_env(local_stack.env, tmp_path)
    argv = [sys.executable, "-m", "airline_hpo.search", "--fpath", str(small_airline), "--max-evals", "40"]
    search = subprocess.Popen(
        [*argv, *SEARCH_ARGS], cwd=TRAINER_DIR, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
        process_group=0,
    )  # fmt: skip
    reader = subprocess.Popen(["cat"], stdin=search.stdout, stdout=subprocess.DEVNULL, process_group=search.pid)
    search.stdout.close()  # only `cat` holds the read end now: when it dies, the pipe is broken
    try:
        wait_for_finished_trials(env, search, 2)
        os.killpg(search.pid, signal.SIGTERM)
        assert reader.wait(timeout=10) == -signal.SIGTERM
        assert search.wait(timeout=60) == 143
    finally:
        for proc in (search, reader):
            if proc.poll() is None:
                proc.kill()
                proc.wait()
    parents, trials = parents_and_trials(experiment_runs(env))
    assert [p.info.status for p in parents] == ["KILLED"]
    assert parents[0].data.tags["stop_reason"] == "signal SIGTERM"
    assert [t for t in trials if t.info.status == "RUNNING"] == []
    assert not list((tmp_path / "journal").glob("*.jsonl")), "a journal was kept as if the server had been down"
