"""A search under faults, as a user meets them: signals to the driver, the tracking server killed for a moment or
for good, parts of the stack down at the start, and bad names. Each test runs the ``hyperopt`` entry point as a
process (what ``mlflow run`` and a Kubernetes Job run) against a real local stack, and checks what the user sees:
the exit status, ONE line on stderr without a traceback, and the runs' statuses in MLflow afterwards.

The tests that kill services use a stack of their own (free ports, temporary state), so the session's stack
survives; the others use the session's stack.
"""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from mlflow import MlflowClient
from mlflow.entities import ViewType

from local_stack import LocalStack
from local_stack.processes import free_ports
from tests.stack_fixtures import started_stack

TRAINER_DIR = Path(__file__).resolve().parents[3] / "trainer"

pytestmark = pytest.mark.integration

#: Small, quick trials (3,000 rows, at most 40 trees): a few tenths of a second each on 2 cores.
SEARCH_ARGS = ["--max-rows", "3000", "--trees-max", "40", "--depth-max", "8", "--model-name", "none"]


def _env(stack_env: dict[str, str], tmp_path: Path, **extra: str) -> dict[str, str]:
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


def _start_search(env: dict[str, str], fpath: Path, max_evals: int, *extra: str) -> subprocess.Popen:
    argv = [sys.executable, "-m", "airline_hpo.search", "--fpath", str(fpath), "--max-evals", str(max_evals)]
    return subprocess.Popen(
        [*argv, *SEARCH_ARGS, *extra],
        cwd=TRAINER_DIR,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def _run_search(env: dict[str, str], fpath: Path, *extra: str, cwd: Path = TRAINER_DIR) -> subprocess.CompletedProcess:
    argv = [sys.executable, "-m", "airline_hpo.search", "--fpath", str(fpath), "--max-evals", "2", *SEARCH_ARGS]
    return subprocess.run([*argv, *extra], cwd=cwd, env=env, capture_output=True, text=True, timeout=120)


#: MLflow's client reads the login from this process's environment at every request (each stack has its own).
_LOGIN = ("MLFLOW_TRACKING_USERNAME", "MLFLOW_TRACKING_PASSWORD")


@pytest.fixture(autouse=True)
def _stack_login_undone() -> Iterator[None]:
    """`_client` puts a stack's login into this process's environment; put back what was there after each test."""
    saved = {name: os.environ.get(name) for name in _LOGIN}
    yield
    for name, value in saved.items():
        if value is None:
            os.environ.pop(name, None)
        else:
            os.environ[name] = value


def _client(env: dict[str, str]) -> MlflowClient:
    """A client of the stack in ``env``, with its login (auth is always on)."""
    os.environ.update({name: env[name] for name in _LOGIN if name in env})
    return MlflowClient(tracking_uri=env["MLFLOW_TRACKING_URI"])


def _runs(env: dict[str, str]) -> list:
    client = _client(env)
    experiment = client.get_experiment_by_name(env["MLFLOW_EXPERIMENT_NAME"])
    if experiment is None:
        return []
    return client.search_runs([experiment.experiment_id], run_view_type=ViewType.ALL, max_results=1000)


def _split(runs: list) -> tuple[list, list]:
    parents = [r for r in runs if "mlflow.parentRunId" not in r.data.tags]
    return parents, [r for r in runs if "mlflow.parentRunId" in r.data.tags]


def _wait_for_finished_trials(env: dict[str, str], proc: subprocess.Popen, count: int, timeout: float = 180) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        assert proc.poll() is None, f"the search ended early: {proc.communicate()}"
        _parents, trials = _split(_runs(env))
        if sum(t.info.status == "FINISHED" for t in trials) >= count:
            return
        time.sleep(0.5)
    proc.kill()
    raise AssertionError(f"fewer than {count} trials finished within {timeout:.0f} s")


def _messages(stderr: str) -> list[str]:
    """stderr without the progress bar's redraws and library warnings: the lines meant for the user."""
    lines = [part.strip() for line in stderr.splitlines() for part in line.split("\r")]
    return [ln for ln in lines if ln.startswith(("error:", "stopped by"))]


def _assert_one_line(stderr: str) -> str:
    assert "Traceback" not in stderr, stderr[-3000:]
    messages = _messages(stderr)
    assert len(messages) == 1, stderr[-3000:]
    print(messages[0])  # shown with -s: what the user reads
    return messages[0]


# --- bad input and the pre-check (session stack) -------------------------------------------------------------


@pytest.mark.parametrize("name", ["team/airline", "x" * 600])
def test_an_invalid_model_name_fails_in_one_line_before_anything_is_created(local_stack, small_airline, tmp_path, name):
    env = _env(local_stack.env, tmp_path)
    done = _run_search(env, small_airline, "--model-name", name)
    assert done.returncode == 2
    line = _assert_one_line(done.stderr)
    assert "model_name" in line and ("'/'" in line or "256" in line), line
    assert _runs(env) == [], "a run was created for a search that could never register its model"


def test_an_unwritable_journal_directory_fails_in_one_line_before_anything_is_created(
    local_stack, small_airline, tmp_path
):
    (tmp_path / "a-file").write_text("not a directory")
    env = _env(local_stack.env, tmp_path, AIRLINE_HPO_JOURNAL_DIR=str(tmp_path / "a-file" / "journal"))
    done = _run_search(env, small_airline)
    assert done.returncode == 2
    line = _assert_one_line(done.stderr)
    assert "journal" in line and "AIRLINE_HPO_JOURNAL_DIR" in line, line
    assert _runs(env) == []


def test_without_a_tracking_uri_the_search_refuses_instead_of_writing_locally(small_airline, tmp_path):
    env = _env({}, tmp_path)
    done = _run_search(env, small_airline, cwd=tmp_path)
    assert done.returncode == 2
    line = _assert_one_line(done.stderr)
    assert "MLFLOW_TRACKING_URI is not set" in line and "sqlite:" in line
    assert not (tmp_path / "mlruns").exists() and not (tmp_path / "mlflow.db").exists()


# --- signals to the driver (session stack) -------------------------------------------------------------------


@pytest.mark.parametrize(("sig", "code"), [(signal.SIGTERM, 143), (signal.SIGINT, 130)])
def test_a_signal_stops_the_search_cleanly_and_resumably(local_stack, small_airline, tmp_path, sig, code):
    env = _env(local_stack.env, tmp_path)
    proc = _start_search(env, small_airline, 40)
    _wait_for_finished_trials(env, proc, 2)
    sent = time.monotonic()
    proc.send_signal(sig)
    _stdout, stderr = proc.communicate(timeout=30)
    assert time.monotonic() - sent < 30, "the driver outlived the Job's default grace period"
    assert proc.returncode == code
    line = _assert_one_line(stderr)
    match = re.fullmatch(rf"stopped by {sig.name} after (\d+) of 40 trials; resume with -P resume_run_id=(\w+)", line)
    assert match, line
    parents, trials = _split(_runs(env))
    assert [p.info.run_id for p in parents] == [match.group(2)]
    assert parents[0].info.status == "KILLED"
    assert parents[0].data.tags["stop_reason"] == f"signal {sig.name}"
    assert [t for t in trials if t.info.status == "RUNNING"] == []
    assert sum(t.info.status == "FINISHED" for t in trials) == int(match.group(1)) < 40


# --- services killed mid-search (a stack of this module's own) -----------------------------------------------


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
    env = _env(own_stack.client_env(), tmp_path)
    proc = _start_search(env, small_airline, 10)
    _wait_for_finished_trials(env, proc, 2)
    _kill_group(own_stack, service)
    time.sleep(5)
    own_stack.up(log=lambda _msg: None)  # restarts the dead server only
    _stdout, stderr = proc.communicate(timeout=300)
    assert proc.returncode == 0, stderr[-3000:]
    assert "Traceback" not in stderr
    parents, trials = _split(_runs(env))
    assert [p.info.status for p in parents] == ["FINISHED"]
    assert len(trials) == 10 and {t.info.status for t in trials} == {"FINISHED"}


def test_a_long_outage_ends_in_one_line_and_the_journal_brings_every_trial_back(own_stack, small_airline, tmp_path):
    env = _env(own_stack.client_env(), tmp_path, AIRLINE_HPO_TRACKING_TIMEOUT="10")
    proc = _start_search(env, small_airline, 60)
    _wait_for_finished_trials(env, proc, 2)
    _kill_group(own_stack, "mlflow")
    killed = time.monotonic()
    try:
        _stdout, stderr = proc.communicate(timeout=90)
    finally:
        own_stack.up(log=lambda _msg: None)
    assert time.monotonic() - killed < 90
    assert proc.returncode == 1
    line = _assert_one_line(stderr)
    assert "cannot reach the MLflow tracking server" in line, line
    match = re.search(r"(\d+) finished trial\(s\) kept in (\S+\.jsonl).*resume_run_id=(\w+)", line)
    assert match, line
    kept, journal, parent_id = int(match.group(1)), Path(match.group(2)), match.group(3)
    assert journal.exists() and kept >= 1
    assert "full log: " in line and Path(line.rsplit("full log: ", 1)[1].rstrip(")")).exists()

    replay = [sys.executable, "-m", "airline_hpo.lifecycle.replay", parent_id]
    first = subprocess.run(replay, cwd=TRAINER_DIR, env=env, capture_output=True, text=True, timeout=120)
    assert first.returncode == 0, first.stderr[-3000:]
    parents, trials = _split(_runs(env))
    assert [p.info.status for p in parents] == ["FAILED"]
    assert "tracking outage" in parents[0].data.tags["stop_reason"]
    assert [t for t in trials if t.info.status == "RUNNING"] == []
    trial_ids = [t.data.tags["trial_id"] for t in trials if t.info.status == "FINISHED"]
    assert len(trial_ids) == len(set(trial_ids)) >= 2 + 0  # every trial once
    assert all("loss" in t.data.metrics for t in trials if t.info.status == "FINISHED")
    again = subprocess.run(replay, cwd=TRAINER_DIR, env=env, capture_output=True, text=True, timeout=120)
    assert again.returncode == 0 and len(_runs(env)) == len(parents) + len(trials), "replay is not idempotent"


@pytest.mark.parametrize(("service", "part"), [("s3", "artifact store"), ("postgres", "database")])
def test_a_down_part_of_the_stack_is_named_before_any_run(own_stack, small_airline, tmp_path, service, part):
    env = _env(own_stack.client_env(), tmp_path)
    _service(own_stack, service).stop()
    try:
        done = _run_search(env, small_airline)
    finally:
        own_stack.up(log=lambda _msg: None)
    assert done.returncode == 2
    line = _assert_one_line(done.stderr)
    assert part in line, line
    client = _client(env)
    assert client.get_experiment_by_name(env["MLFLOW_EXPERIMENT_NAME"]) is None or _runs(env) == []


# --- no silent local store, telemetry, client glitches -------------------------------------------------------


def test_a_local_store_named_explicitly_is_used(small_airline, tmp_path):
    env = _env({}, tmp_path, MLFLOW_TRACKING_URI=f"sqlite:///{tmp_path / 'store' / 'mlflow.db'}")
    (tmp_path / "store").mkdir()
    done = _run_search(env, small_airline, cwd=tmp_path)
    assert done.returncode == 0, done.stderr[-3000:]
    parents, trials = _split(_runs(env))
    assert [p.info.status for p in parents] == ["FINISHED"] and len(trials) == 2


def test_the_trainer_runs_without_mlflow_telemetry(tmp_path):
    """MLflow 3.17 starts a telemetry client (a thread that sends usage data out and races the client) unless
    told not to; every entry point imports the package, which tells it."""
    probe = "import airline_hpo.search; from mlflow.telemetry.client import get_telemetry_client as g; print(g())"
    # as a user's shell would be: not under pytest or CI (MLflow turns telemetry off there by itself)
    ci = {"PYTEST_CURRENT_TEST", "CI", "GITHUB_ACTIONS", "GITLAB_CI", "JENKINS_URL", "BUILDKITE", "DO_NOT_TRACK"}
    env = {k: v for k, v in _env({}, tmp_path).items() if k not in ci}
    plain = subprocess.run(
        [sys.executable, "-c", probe.replace("import airline_hpo.search; ", "import mlflow; ")],
        cwd=tmp_path, env=env, capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    ours = subprocess.run(
        [sys.executable, "-c", probe], cwd=TRAINER_DIR, env=env, capture_output=True, text=True, timeout=60
    )
    assert "TelemetryClient" in plain.stdout, "MLflow no longer starts telemetry by default: drop this test"
    assert ours.stdout.strip() == "None", ours.stdout + ours.stderr


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


def test_a_trial_that_outlasts_the_grace_budget_is_marked_killed(local_stack, airline_table, tmp_path):
    """The running trial cannot finish in time: the watchdog marks it and the parent KILLED and exits anyway."""
    big = tmp_path / "big.parquet"
    airline_table.head(120_000).to_parquet(big, index=False)
    env = _env(local_stack.env, tmp_path, AIRLINE_HPO_STOP_GRACE="3")
    argv = [sys.executable, "-m", "airline_hpo.search", "--fpath", str(big), "--max-evals", "5", "--model-name"]
    proc = subprocess.Popen(
        [*argv, "none", "--trees-max", "300", "--depth-max", "20", "--max-samples-min", "1.0"],
        cwd=TRAINER_DIR, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip
    deadline = time.monotonic() + 120
    while not any(t.info.status == "RUNNING" for t in _split(_runs(env))[1]):
        assert proc.poll() is None and time.monotonic() < deadline, "no trial started"
        time.sleep(0.3)
    sent = time.monotonic()
    proc.send_signal(signal.SIGTERM)
    _stdout, stderr = proc.communicate(timeout=30)
    assert time.monotonic() - sent < 15
    assert proc.returncode == 143
    line = _assert_one_line(stderr)
    assert (
        line.startswith("stopped by SIGTERM after 0 of 5 trials; resume with -P resume_run_id=") and "cut short" in line
    )
    parents, trials = _split(_runs(env))
    assert [p.info.status for p in parents] == ["KILLED"]
    assert [t.info.status for t in trials] == ["KILLED"]


def test_sigterm_to_the_train_entry_point_marks_its_run_killed(local_stack, airline_table, tmp_path):
    big = tmp_path / "big.parquet"
    airline_table.head(120_000).to_parquet(big, index=False)
    env = _env(local_stack.env, tmp_path, AIRLINE_HPO_STOP_GRACE="2")
    argv = [sys.executable, "-m", "airline_hpo.train", "--fpath", str(big), "--n-estimators", "300"]
    proc = subprocess.Popen(
        [*argv, "--max-depth", "20"], cwd=TRAINER_DIR, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
        text=True,
    )  # fmt: skip
    deadline = time.monotonic() + 120
    while not _runs(env):
        assert proc.poll() is None and time.monotonic() < deadline, "the run was never created"
        time.sleep(0.3)
    proc.send_signal(signal.SIGTERM)
    _stdout, stderr = proc.communicate(timeout=30)
    assert proc.returncode == 143
    line = _assert_one_line(stderr)
    [run] = _runs(env)
    assert line.startswith(f"stopped by SIGTERM; run {run.info.run_id} marked KILLED")
    assert run.info.status == "KILLED" and run.data.tags["stop_reason"] == "signal SIGTERM"


def test_the_retry_budget_bounds_how_long_one_call_waits_for_a_dead_server(tmp_path):
    """MLflow's defaults wait about 4.2 minutes per call; the budget (6 s here) is what a call now waits."""
    probe = (
        "import time, airline_hpo.lifecycle.outage as o; o.apply(6)\n"
        "from mlflow import MlflowClient; t = time.monotonic()\n"
        "try: MlflowClient().search_experiments(max_results=1)\n"
        "except Exception as e: print(round(time.monotonic() - t, 1), type(e).__name__)"
    )
    port = free_ports(1)[0]
    env = _env({}, tmp_path, MLFLOW_TRACKING_URI=f"http://127.0.0.1:{port}")
    done = subprocess.run(
        [sys.executable, "-c", probe], cwd=TRAINER_DIR, env=env, capture_output=True, text=True, timeout=120
    )
    seconds, error = done.stdout.split()
    assert error == "MlflowException" and 5.5 <= float(seconds) < 15, done.stdout + done.stderr[-2000:]


# --- a reader that dies first, an unrelated resume, logs that must exist (issue 16) ----------------------------


def test_a_broken_output_pipe_is_no_outage_and_the_search_still_ends_killed(local_stack, small_airline, tmp_path):
    """``python -m airline_hpo.search ... 2>&1 | cat``, then SIGTERM to the process group (a terminal's Ctrl-C,
    or a supervisor stopping ``mlflow run ... | tee log``): the reader dies first, the search's next write gets
    ``BrokenPipeError``. That used to read as "the tracking server failed a call" and left the parent RUNNING."""
    env = _env(local_stack.env, tmp_path)
    argv = [sys.executable, "-m", "airline_hpo.search", "--fpath", str(small_airline), "--max-evals", "40"]
    search = subprocess.Popen(
        [*argv, *SEARCH_ARGS], cwd=TRAINER_DIR, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
        process_group=0,
    )  # fmt: skip
    reader = subprocess.Popen(["cat"], stdin=search.stdout, stdout=subprocess.DEVNULL, process_group=search.pid)
    search.stdout.close()  # only `cat` holds the read end now: when it dies, the pipe is broken
    try:
        _wait_for_finished_trials(env, search, 2)
        os.killpg(search.pid, signal.SIGTERM)
        assert reader.wait(timeout=10) == -signal.SIGTERM
        assert search.wait(timeout=60) == 143
    finally:
        for proc in (search, reader):
            if proc.poll() is None:
                proc.kill()
                proc.wait()
    parents, trials = _split(_runs(env))
    assert [p.info.status for p in parents] == ["KILLED"]
    assert parents[0].data.tags["stop_reason"] == "signal SIGTERM"
    assert [t for t in trials if t.info.status == "RUNNING"] == []
    assert not list((tmp_path / "journal").glob("*.jsonl")), "a journal was kept as if the server had been down"


def test_resume_refuses_a_run_that_is_not_a_search_of_this_experiment(local_stack, small_airline, tmp_path):
    """The id of another experiment's run (``python -m local_stack check`` leaves one) or of a run in this
    experiment that no search made: one line, exit 2, and nothing written into that run."""
    env = _env(local_stack.env, tmp_path)
    client = _client(env)
    other = client.create_run(client.create_experiment(f"other-{uuid.uuid4().hex[:8]}"), run_name="stack-check")
    mine = client.create_run(client.create_experiment(env["MLFLOW_EXPERIMENT_NAME"]), run_name="notes")
    for run, words in ((other, "is a run of experiment"), (mine, "is not a search's parent run")):
        done = _run_search(env, small_airline, "--resume-run-id", run.info.run_id)
        assert done.returncode == 2, done.stderr[-2000:]
        line = _assert_one_line(done.stderr)
        assert words in line and run.info.run_id in line, line
        after = client.get_run(run.info.run_id)
        assert after.data.params == {} and after.data.metrics == {}
        assert client.list_artifacts(run.info.run_id) == [] and after.info.status == "RUNNING"
    assert len(_runs(env)) == 1, "a run was created for a refused resume"


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

    env = _env(local_stack.env, tmp_path)
    name = f"serve-{uuid.uuid4().hex[:8]}"
    for key in ("MLFLOW_TRACKING_URI", "MLFLOW_TRACKING_USERNAME", "MLFLOW_TRACKING_PASSWORD"):
        if key in env:
            monkeypatch.setenv(key, env[key])
    experiment_id = _client(env).create_experiment(env["MLFLOW_EXPERIMENT_NAME"])
    with mlflow.start_run(experiment_id=experiment_id):
        info = mlflow.sklearn.log_model(DummyClassifier().fit(np.zeros((4, 1)), [0, 1, 0, 1]), name="model",
                                        registered_model_name=name)  # fmt: skip
    _client(env).set_registered_model_alias(name, "champion", info.registered_model_version)
    argv = [sys.executable, "-m", "airline_hpo.serve_check", "--model-name", name, "--timeout", "0.5"]
    done = subprocess.run(argv, cwd=TRAINER_DIR, env=env, capture_output=True, text=True, timeout=120)
    assert done.returncode == 1, done.stderr[-2000:]
    line = _assert_one_line(done.stderr)
    assert "did not answer /ping within" in line, line
    server_log = Path(re.search(r"read (\S+\.log)", line).group(1))
    assert server_log.exists() and server_log.parent == tmp_path / "logs", line
