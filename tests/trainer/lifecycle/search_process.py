"""Running the ``hyperopt`` entry point as a process (what ``mlflow run`` and a Kubernetes Job run) and reading
what a user sees afterwards: the exit status, the one line on stderr, and the runs in MLflow. Shared by the
lifecycle tests (signals, outages, pre-checks), which each check one way a search can be stopped or refused.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
import uuid
from pathlib import Path

from mlflow import MlflowClient
from mlflow.entities import ViewType

TRAINER_DIR = Path(__file__).resolve().parents[3] / "trainer"

#: Small, quick trials (3,000 rows, at most 40 trees): a few tenths of a second each on 2 cores.
SEARCH_ARGS = ["--max-rows", "3000", "--trees-max", "40", "--depth-max", "8", "--model-name", "none"]


def search_env(stack_env: dict[str, str], tmp_path: Path, **extra: str) -> dict[str, str]:
    path = os.pathsep.join([str(TRAINER_DIR), os.environ.get("PYTHONPATH", "")])
    env = {k: v for k, v in os.environ.items() if not k.startswith(("MLFLOW_", "AIRLINE_HPO_"))}
    env.update(stack_env)
    env.update(
        PYTHONPATH=path,
        MLFLOW_EXPERIMENT_NAME=f"rel-{uuid.uuid4().hex[:10]}",
        AIRLINE_HPO_JOURNAL_DIR=str(tmp_path / "journal"),
        AIRLINE_HPO_LOG_DIR=str(tmp_path / "logs"),
    )
    env.update(extra)
    return env


def start_search(env: dict[str, str], fpath: Path, max_evals: int, *extra: str) -> subprocess.Popen:
    argv = [sys.executable, "-m", "airline_hpo.search", "--fpath", str(fpath), "--max-evals", str(max_evals)]
    return subprocess.Popen(
        [*argv, *SEARCH_ARGS, *extra],
        cwd=TRAINER_DIR,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def run_search(env: dict[str, str], fpath: Path, *extra: str, cwd: Path = TRAINER_DIR) -> subprocess.CompletedProcess:
    argv = [sys.executable, "-m", "airline_hpo.search", "--fpath", str(fpath), "--max-evals", "2", *SEARCH_ARGS]
    return subprocess.run([*argv, *extra], cwd=cwd, env=env, capture_output=True, text=True, timeout=120)


#: MLflow's client reads the login from this process's environment at every request (each stack has its own).
LOGIN = ("MLFLOW_TRACKING_USERNAME", "MLFLOW_TRACKING_PASSWORD")


def tracking_client(env: dict[str, str]) -> MlflowClient:
    """A client of the stack in ``env``, with its login (auth is always on); the lifecycle tests' conftest puts
    back the process's own login after each test."""
    os.environ.update({name: env[name] for name in LOGIN if name in env})
    return MlflowClient(tracking_uri=env["MLFLOW_TRACKING_URI"])


def experiment_runs(env: dict[str, str]) -> list:
    client = tracking_client(env)
    experiment = client.get_experiment_by_name(env["MLFLOW_EXPERIMENT_NAME"])
    if experiment is None:
        return []
    return client.search_runs([experiment.experiment_id], run_view_type=ViewType.ALL, max_results=1000)


def parents_and_trials(runs: list) -> tuple[list, list]:
    parents = [r for r in runs if "mlflow.parentRunId" not in r.data.tags]
    return parents, [r for r in runs if "mlflow.parentRunId" in r.data.tags]


def wait_for_finished_trials(env: dict[str, str], proc: subprocess.Popen, count: int, timeout: float = 180) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        assert proc.poll() is None, f"the search ended early: {proc.communicate()}"
        _parents, trials = parents_and_trials(experiment_runs(env))
        if sum(t.info.status == "FINISHED" for t in trials) >= count:
            return
        time.sleep(0.5)
    proc.kill()
    raise AssertionError(f"fewer than {count} trials finished within {timeout:.0f} s")


def user_lines(stderr: str) -> list[str]:
    """stderr without the progress bar's redraws and library warnings: the lines meant for the user."""
    lines = [part.strip() for line in stderr.splitlines() for part in line.split("\r")]
    return [ln for ln in lines if ln.startswith(("error:", "stopped by"))]


def assert_one_line(stderr: str) -> str:
    assert "Traceback" not in stderr, stderr[-3000:]
    messages = user_lines(stderr)
    assert len(messages) == 1, stderr[-3000:]
    print(messages[0])  # shown with -s: what the user reads
    return messages[0]
