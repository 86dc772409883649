"""The local stack on a bad day: killed processes, a half-dead MLflow, a missing bucket, lost or damaged state.

These tests kill and restart services, so they run on a stack of their own (``fault_stack``), started with
``python -m local_stack up`` in a child process as a user starts it; the suite's shared stack is not touched.
Its state directory sits in a parent whose mode (0750) must survive ``up`` and ``down``.
"""

from __future__ import annotations

import json
import os
import signal
import stat
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterator

import psutil
import pytest

from local_stack import LocalStack, StackSettings, object_store
from local_stack.processes import free_ports, port_in_use
from local_stack.settings import REPO_ROOT
from local_stack.stack import SERVICES
from tests.local_stack.stack_cli import assert_one_line_error, run_cli
from tests.stack_fixtures import started_stack_cli, use_stack

pytestmark = pytest.mark.integration

PARENT_MODE = 0o750


@pytest.fixture(scope="module")
def fault_stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalStack]:
    parent = tmp_path_factory.mktemp("fault-parent")
    parent.chmod(PARENT_MODE)
    with started_stack_cli(parent / "stack") as stack:
        yield stack


def _status(stack: LocalStack, healthy: bool) -> dict[str, str]:
    """`status`'s line of each service; its exit status must agree (0 only when all is healthy, else 1), so that
    a script or supervisor can act on it."""
    result = run_cli(stack, "status", timeout=60)
    assert result.returncode == (0 if healthy else 1), result
    lines = [line.split(None, 1) for line in result.stdout.splitlines() if not line.startswith("state:")]
    return {name: rest for name, rest in lines}


def _kill_leader(stack: LocalStack, name: str) -> int:
    svc = next(svc for svc in SERVICES if svc.name == name)
    pid = stack.process(svc).inspect().pid
    assert pid
    os.kill(pid, signal.SIGKILL)
    deadline = time.monotonic() + 20
    while psutil.pid_exists(pid) and psutil.Process(pid).status() != psutil.STATUS_ZOMBIE:
        assert time.monotonic() < deadline
        time.sleep(0.1)
    return pid


def _up_and_healthy(stack: LocalStack) -> None:
    result = run_cli(stack, "up", timeout=240)
    assert result.returncode == 0, result.stderr
    assert all(line.startswith("running, pid") for line in _status(stack, healthy=True).values())


def test_up_keeps_the_parent_mode_and_the_store_private(fault_stack):
    state = fault_stack.settings.state_dir
    assert stat.S_IMODE(state.parent.stat().st_mode) == PARENT_MODE
    assert stat.S_IMODE(state.stat().st_mode) == 0o700
    data = object_store.data_dir(fault_stack.settings)
    assert stat.S_IMODE(data.stat().st_mode) == 0o700
    volumes = [p for p in data.iterdir() if p.suffix in (".dat", ".idx")]
    assert volumes
    assert all(stat.S_IMODE(p.stat().st_mode) & 0o077 == 0 for p in volumes)


def test_status_of_a_healthy_stack_says_what_answers(fault_stack):
    lines = _status(fault_stack, healthy=True)
    assert set(lines) == {"postgres", "s3", "mlflow"}
    assert all(line.startswith("running, pid") for line in lines.values()), lines
    env = run_cli(fault_stack, "env", timeout=60)
    assert env.returncode == 0 and "MLFLOW_TRACKING_URI=" in env.stdout


def test_the_mlflow_server_runs_with_telemetry_off(fault_stack):
    mlflow = next(svc for svc in SERVICES if svc.name == "mlflow")
    leader = psutil.Process(fault_stack.process(mlflow).inspect().pid)
    processes = [leader, *leader.children(recursive=True)]
    assert len(processes) >= 3  # the CLI, uvicorn and its workers
    assert all(proc.environ().get("MLFLOW_DISABLE_TELEMETRY") == "true" for proc in processes)


def test_dead_mlflow_leader_with_live_workers_is_reported_and_left_alone(fault_stack):
    leader = _kill_leader(fault_stack, "mlflow")
    mlflow = next(svc for svc in SERVICES if svc.name == "mlflow")
    orphans = fault_stack.process(mlflow).inspect().orphans
    assert orphans, "kill -9 of the leader should leave its uvicorn processes behind"

    line = _status(fault_stack, healthy=False)["mlflow"]
    assert line.startswith("HALF-DEAD") and str(leader) in line and "make up" in line
    assert all(psutil.pid_exists(pid) for pid in orphans), "status must not kill anything"
    assert fault_stack.settings.pid_file("mlflow").exists(), "status must not clean up either"

    env = run_cli(fault_stack, "env", timeout=60)
    assert_one_line_error(env, "mlflow", "HALF-DEAD", "make up")
    assert "export" not in env.stdout
    assert all(psutil.pid_exists(pid) for pid in orphans)

    _up_and_healthy(fault_stack)
    assert not any(psutil.pid_exists(pid) for pid in orphans)


@pytest.mark.parametrize("name", ["postgres", "s3"])
def test_killed_database_or_store_is_named_by_status_and_env(fault_stack, name):
    _kill_leader(fault_stack, name)
    deadline = time.monotonic() + 30
    while not (line := _status(fault_stack, healthy=False)[name]).startswith(("STOPPED", "HALF-DEAD")):
        assert time.monotonic() < deadline, line
        time.sleep(1)
    assert "make up" in line
    env = run_cli(fault_stack, "env", timeout=60)
    assert_one_line_error(env, f"{name} ", "make up")
    _up_and_healthy(fault_stack)


def test_a_missing_bucket_is_reported_and_recreated_by_up(fault_stack, monkeypatch, tmp_path):
    settings, creds = fault_stack.settings, fault_stack.credentials
    client = object_store.s3_client(settings, creds.s3_access_key, creds.s3_secret_key)
    listed = client.list_objects_v2(Bucket=settings.bucket).get("Contents", [])
    for obj in listed:
        client.delete_object(Bucket=settings.bucket, Key=obj["Key"])
    client.delete_bucket(Bucket=settings.bucket)
    assert _status(fault_stack, healthy=False)["s3"].startswith("NOT ANSWERING")
    # A PUT with the stack's (admin) keys does not create the bucket as a side effect.
    with pytest.raises(Exception, match="NoSuchBucket"):
        client.put_object(Bucket=settings.bucket, Key="mlartifacts/x.txt", Body=b"x")
    assert settings.bucket not in [b["Name"] for b in client.list_buckets()["Buckets"]]
    # Nor does an artifact logged through MLflow's proxy (its PUT fails; retries off so it fails at once).
    from mlflow import MlflowClient

    use_stack(monkeypatch, fault_stack)
    monkeypatch.setenv("MLFLOW_HTTP_REQUEST_MAX_RETRIES", "0")
    mlflow = MlflowClient(settings.tracking_uri)
    run = mlflow.create_run(mlflow.create_experiment(f"missing-bucket-{time.time_ns()}"))
    note = tmp_path / "note.txt"
    note.write_text("x")
    with pytest.raises(Exception):  # noqa: B017 - MLflow raises a generic error for the proxy's 500
        mlflow.log_artifact(run.info.run_id, str(note))
    assert settings.bucket not in [b["Name"] for b in client.list_buckets()["Buckets"]]
    _up_and_healthy(fault_stack)
    client.put_object(Bucket=settings.bucket, Key="mlartifacts/x.txt", Body=b"x")


def test_a_damaged_pid_file_is_reported_and_down_still_stops_mlflow(fault_stack):
    """The issue's case: `echo 'garbage{' > .stack/run/mlflow.pid; down` said success while MLflow kept its port."""
    settings = fault_stack.settings
    mlflow = next(svc for svc in SERVICES if svc.name == "mlflow")
    leader = psutil.Process(fault_stack.process(mlflow).inspect().pid)
    tree = [leader, *leader.children(recursive=True)]
    pid_file = settings.pid_file("mlflow")
    pid_file.write_text("garbage{")
    store = next(svc for svc in SERVICES if svc.name == "s3")
    sockets = object_store.grpc_sockets(fault_stack.process(store).inspect().pid)
    assert len(sockets) == 4 and all(path.is_socket() for path in sockets)

    line = _status(fault_stack, healthy=False)["mlflow"]
    assert line.startswith("DAMAGED PID FILE") and str(pid_file) in line and str(leader.pid) in line, line
    down = run_cli(fault_stack, "down", timeout=120)
    assert down.returncode == 0 and "mlflow" in down.stdout, down
    _, alive = psutil.wait_procs(tree, timeout=10)
    assert not alive, f"still running after down: {alive}"
    assert not port_in_use(settings.host, settings.mlflow_port)
    assert not pid_file.exists()
    assert not any(path.exists() for path in sockets), "down leaves no gRPC socket of the store in /tmp"
    _up_and_healthy(fault_stack)


#: Starts the MLflow server as versions before auth-by-default did (no `--app-name basic-auth`), from a child that
#: exits at once: like the server `make up` left running before the upgrade, it is no child of pytest.
_OLD_SERVER = """
import sys
from local_stack import LocalStack, StackSettings, tracking_server
from local_stack.stack import SERVICES
stack = LocalStack(StackSettings.load(state_dir=sys.argv[1]))
settings, creds = stack.settings, stack.credentials
argv = tracking_server.server_argv(settings, settings.mlflow_port)
i = argv.index("--app-name")
env = tracking_server.server_env(settings, creds)
env = {k: v for k, v in env.items() if not k.startswith(("MLFLOW_AUTH", "MLFLOW_FLASK"))}
process = stack.process(next(svc for svc in SERVICES if svc.name == tracking_server.SERVICE))
process.start(argv[:i] + argv[i + 2:], env=env)
anyone = {"MLFLOW_TRACKING_USERNAME": "-", "MLFLOW_TRACKING_PASSWORD": "-"}  # an open server ignores a login
process.wait_until(lambda: tracking_server.is_ready(settings.tracking_uri, anyone), 120, "ready")
"""


def _answers_without_login(stack: LocalStack) -> int:
    url = f"{stack.settings.tracking_uri}/api/2.0/mlflow/experiments/get-by-name?experiment_name=Default"
    try:
        with urllib.request.urlopen(url, timeout=10) as response:
            return response.status
    except urllib.error.HTTPError as exc:
        return exc.code


def test_an_mlflow_server_left_open_by_an_older_version_is_named_and_refused(fault_stack):
    """The upgrade: before auth became the default, `make up` started MLflow without a login and saved
    `"auth": false`. Such a server must never pass for healthy: `status` names it (exit 1), `up` and `env` refuse
    in one line with the fix, and `make down` + `make up` bring the login back, data kept."""
    settings = fault_stack.settings
    saved = settings.state_dir / "stack.json"
    saved.write_text(json.dumps({**json.loads(saved.read_text()), "auth": False}))
    mlflow = next(svc for svc in SERVICES if svc.name == "mlflow")
    assert fault_stack.process(mlflow).stop()
    old = subprocess.run(
        [sys.executable, "-c", _OLD_SERVER, str(settings.state_dir)], cwd=REPO_ROOT, capture_output=True, text=True
    )
    assert old.returncode == 0, old.stderr
    assert _answers_without_login(fault_stack) == 200  # the hole this test is about

    line = _status(fault_stack, healthy=False)["mlflow"]
    assert line.startswith("OPEN:") and "without a login" in line and "make down" in line, line
    assert_one_line_error(run_cli(fault_stack, "up", timeout=60), "without a login", "`make down`, then `make up`")
    assert_one_line_error(run_cli(fault_stack, "env", timeout=60), "mlflow OPEN", "make down")

    assert run_cli(fault_stack, "down", timeout=120).returncode == 0
    _up_and_healthy(fault_stack)
    assert _answers_without_login(fault_stack) == 401
    assert "auth" not in json.loads(saved.read_text())


def test_foreign_program_on_a_port_is_named(fault_stack):
    import socket

    (port,) = free_ports(1)
    settings = StackSettings(
        state_dir=fault_stack.settings.state_dir.parent / "other",
        postgres_port=fault_stack.settings.postgres_port,
        s3_port=free_ports(1)[0],
        mlflow_port=port,
    )
    with socket.socket() as blocker:
        blocker.bind(("127.0.0.1", port))
        blocker.listen()
        settings.save()
        line = _status(LocalStack(settings), healthy=False)["mlflow"]
    assert line.startswith(f"STOPPED, and port {port} is held by pid {os.getpid()}"), line
    assert "--mlflow-port" in line


def test_down_keeps_the_parent_mode_and_lost_credentials_are_explained(fault_stack):
    state = fault_stack.settings.state_dir
    assert run_cli(fault_stack, "down", timeout=120).returncode == 0
    assert stat.S_IMODE(state.parent.stat().st_mode) == PARENT_MODE
    secrets = fault_stack.settings.secrets_file
    kept = secrets.read_bytes()
    secrets.unlink()
    try:
        result = run_cli(fault_stack, "up", timeout=60)
        assert_one_line_error(result, str(secrets), "is missing", "hold data", "put the file back", "--wipe")
        assert not secrets.exists(), "up must not invent new keys for existing data"
    finally:
        secrets.write_bytes(kept)
        secrets.chmod(0o600)
    assert all(line.startswith("stopped") for line in _status(fault_stack, healthy=False).values())
