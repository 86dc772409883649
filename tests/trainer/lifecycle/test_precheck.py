"""What a search refuses before it creates anything (``airline_hpo.lifecycle.precheck``): bad model names, an
unwritable journal, no tracking URI (never a silent local store), a resume of a run that is not a search of this
experiment; what it accepts (a local store named explicitly) and leaves off (MLflow's telemetry); and error lines
that point only to logs that exist.
"""

from __future__ import annotations

import re
import subprocess
import sys
import uuid
from pathlib import Path

import pytest
from search_process import (
    TRAINER_DIR,
    assert_one_line,
    experiment_runs,
    parents_and_trials,
    run_search,
    search_env,
    tracking_client,
)

pytestmark = pytest.mark.integration


@pytest.mark.parametrize("name", ["team/airline", "x" * 600])
def test_an_invalid_model_name_fails_in_one_line_before_anything_is_created(local_stack, small_airline, tmp_path, name):
    env = search_env(local_stack.env, tmp_path)
    done = run_search(env, small_airline, "--model-name", name)
    assert done.returncode == 2
    line = assert_one_line(done.stderr)
    assert "model_name" in line and ("'/'" in line or "256" in line), line
    assert experiment_runs(env) == [], "a run was created for a search that could never register its model"


def test_an_unwritable_journal_directory_fails_in_one_line_before_anything_is_created(
    local_stack, small_airline, tmp_path
):
    (tmp_path / "a-file").write_text("not a directory")
    env = search_env(local_stack.env, tmp_path, AIRLINE_HPO_JOURNAL_DIR=str(tmp_path / "a-file" / "journal"))
    done = run_search(env, small_airline)
    assert done.returncode == 2
    line = assert_one_line(done.stderr)
    assert "journal" in line and "AIRLINE_HPO_JOURNAL_DIR" in line, line
    assert experiment_runs(env) == []


def test_without_a_tracking_uri_the_search_refuses_instead_of_writing_locally(small_airline, tmp_path):
    env = search_env({}, tmp_path)
    done = run_search(env, small_airline, cwd=tmp_path)
    assert done.returncode == 2
    line = assert_one_line(done.stderr)
    assert "MLFLOW_TRACKING_URI is not set" in line and "sqlite:" in line
    assert not (tmp_path / "mlruns").exists() and not (tmp_path / "mlflow.db").exists()


def test_a_local_store_named_explicitly_is_used(small_airline, tmp_path):
    env = search_env({}, tmp_path, MLFLOW_TRACKING_URI=f"sqlite:///{tmp_path / 'store' / 'mlflow.db'}")
    (tmp_path / "store").mkdir()
    done = run_search(env, small_airline, cwd=tmp_path)
    assert done.returncode == 0, done.stderr[-3000:]
    parents, trials = parents_and_trials(experiment_runs(env))
    assert [p.info.status for p in parents] == ["FINISHED"] and len(trials) == 2


def test_the_trainer_runs_without_mlflow_telemetry(tmp_path):
    """MLflow 3.17 starts a telemetry client (a thread that sends usage data out and races the client) unless
    told not to; every entry point imports the package, which tells it."""
    probe = "import airline_hpo.search; from mlflow.telemetry.client import get_telemetry_client as g; print(g())"
    # as a user's shell would be: not under pytest or CI (MLflow turns telemetry off there by itself)
    ci = {"PYTEST_CURRENT_TEST", "CI", "GITHUB_ACTIONS", "GITLAB_CI", "JENKINS_URL", "BUILDKITE", "DO_NOT_TRACK"}
    env = {k: v for k, v in search_env({}, tmp_path).items() if k not in ci}
    plain = subprocess.run(
        [sys.executable, "-c", probe.replace("import airline_hpo.search; ", "import mlflow; ")],
        cwd=tmp_path, env=env, capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    ours = subprocess.run(
        [sys.executable, "-c", probe], cwd=TRAINER_DIR, env=env, capture_output=True, text=True, timeout=60
    )
    assert "TelemetryClient" in plain.stdout, "MLflow no longer starts telemetry by default: drop this test"
    assert ours.stdout.strip() == "None", ours.stdout + ours.stderr


def test_resume_refuses_a_run_that_is_not_a_search_of_this_experiment(local_stack, small_airline, tmp_path):
    """The id of another experiment's run (``python -m local_stack check`` leaves one) or of a run in this
    experiment that no search made: one line, exit 2, and nothing written into that run."""
    env = search_env(local_stack.env, tmp_path)
    client = tracking_client(env)
    other = client.create_run(client.create_experiment(f"other-{uuid.uuid4().hex[:8]}"), run_name="stack-check")
    mine = client.create_run(client.create_experiment(env["MLFLOW_EXPERIMENT_NAME"]), run_name="notes")
    for run, words in ((other, "is a run of experiment"), (mine, "is not a search's parent run")):
        done = run_search(env, small_airline, "--resume-run-id", run.info.run_id)
        assert done.returncode == 2, done.stderr[-2000:]
        line = assert_one_line(done.stderr)
        assert words in line and run.info.run_id in line, line
        after = client.get_run(run.info.run_id)
        assert after.data.params == {} and after.data.metrics == {}
        assert client.list_artifacts(run.info.run_id) == [] and after.info.status == "RUNNING"
    assert len(experiment_runs(env)) == 1, "a run was created for a refused resume"


@pytest.mark.parametrize("failure", [RuntimeError("disk on fire"), "work"])
def test_an_error_line_cites_a_log_only_when_one_was_written(tmp_path, monkeypatch, capsys, failure):
    """An unwritable ``AIRLINE_HPO_LOG_DIR`` (here: under a file) leaves no log: the line must not send the user
    to it. A writable one: the cited file exists and holds the detail."""
    from airline_hpo.errors import EXIT_FAILED, TrainerError, run_cli

    def main(_argv):
        if failure == "work":
            raise TrainerError("no trial succeeded", "read the trials' error tags", EXIT_FAILED)
        raise failure

    (tmp_path / "a-file").write_text("not a directory")
    for log_dir, written in ((tmp_path / "a-file" / "logs", False), (tmp_path / "logs", True)):
        monkeypatch.setenv("AIRLINE_HPO_LOG_DIR", str(log_dir))
        assert run_cli(main, [], prog="probe") == 1
        [line] = capsys.readouterr().err.strip().splitlines()
        cited = re.findall(r"(/\S+\.log)\b", line)
        assert all(Path(p).exists() for p in cited), line
        assert bool(cited) == written, line
        if not written:
            assert f"{log_dir} is not writable" in line and "--debug" in line, line


def test_a_serve_check_error_points_to_a_model_server_log_that_exists(local_stack, tmp_path, monkeypatch):
    """The model server's log used to live in a temporary directory that was gone when the error named it."""
    import mlflow
    import numpy as np
    from sklearn.dummy import DummyClassifier

    env = search_env(local_stack.env, tmp_path)
    name = f"serve-{uuid.uuid4().hex[:8]}"
    for key in ("MLFLOW_TRACKING_URI", "MLFLOW_TRACKING_USERNAME", "MLFLOW_TRACKING_PASSWORD"):
        if key in env:
            monkeypatch.setenv(key, env[key])
    experiment_id = tracking_client(env).create_experiment(env["MLFLOW_EXPERIMENT_NAME"])
    with mlflow.start_run(experiment_id=experiment_id):
        info = mlflow.sklearn.log_model(DummyClassifier().fit(np.zeros((4, 1)), [0, 1, 0, 1]), name="model",
                                        registered_model_name=name)  # fmt: skip
    tracking_client(env).set_registered_model_alias(name, "champion", info.registered_model_version)
    argv = [sys.executable, "-m", "airline_hpo.serve_check", "--model-name", name, "--timeout", "0.5"]
    done = subprocess.run(argv, cwd=TRAINER_DIR, env=env, capture_output=True, text=True, timeout=120)
    assert done.returncode == 1, done.stderr[-2000:]
    line = assert_one_line(done.stderr)
    assert "did not answer /ping within" in line, line
    server_log = Path(re.search(r"read (\S+\.log)", line).group(1))
    assert server_log.exists() and server_log.parent == tmp_path / "logs", line
