"""The local stack as users drive it: up, status, env, down, and the faults the foundation issue lists."""

from __future__ import annotations

import os
import shlex
import signal
import socket
import stat
import subprocess
import sys
import time
from pathlib import Path

import pytest

from local_stack import LocalStack, StackError, StackSettings, object_store
from local_stack.credentials import load_or_create
from local_stack.processes import free_ports
from local_stack.settings import REPO_ROOT
from local_stack.smoke_check import run_smoke_check
from local_stack.stack import SERVICES

pytestmark = pytest.mark.integration


def _cli(*args: str, state_dir: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "local_stack", "--state-dir", str(state_dir), *args],
        capture_output=True,
        text=True,
        cwd=REPO_ROOT,
        timeout=180,
    )


def _isolated_settings(tmp_path: Path, **ports: int) -> StackSettings:
    postgres_port, s3_port, mlflow_port = free_ports(3)
    defaults = {"postgres_port": postgres_port, "s3_port": s3_port, "mlflow_port": mlflow_port}
    return StackSettings(state_dir=tmp_path / "stack", **{**defaults, **ports})


def test_data_path_run_metric_artifact_and_bucket_object(local_stack):
    result = run_smoke_check(local_stack.stack)
    assert result.metric == 42.0
    assert result.run_id in result.artifact_text
    assert result.object_key.startswith(f"{local_stack.stack.settings.artifact_prefix}/{result.experiment_id}/")
    assert result.object_key.endswith("/artifacts/hello.txt")


def test_seaweedfs_writes_its_log_files_in_the_stack_not_in_tmp(local_stack):
    """glog's default is the system's temporary directory: a new set of files for every start, which `down --wipe`
    never removed."""
    import tempfile

    logs = object_store.log_dir(local_stack.stack.settings)
    written = sorted(logs.glob("weed.*.log.INFO.*"))
    assert written, f"no SeaweedFS log file in {logs}"
    pids = {path.name.rsplit(".", 1)[-1] for path in written}
    in_tmp = [p for p in Path(tempfile.gettempdir()).glob("weed.*.log.*") if p.name.rsplit(".", 1)[-1] in pids]
    assert in_tmp == []


def test_up_twice_starts_no_duplicates(local_stack):
    before = local_stack.stack.status()
    assert all(before.values())
    local_stack.stack.up(log=lambda _msg: None)
    assert local_stack.stack.status() == before


def test_env_prints_evaluable_exports_for_a_client(local_stack):
    result = _cli("env", state_dir=local_stack.stack.settings.state_dir)
    assert result.returncode == 0, result.stderr
    exported = dict(shlex.split(line.removeprefix("export "))[0].split("=", 1) for line in result.stdout.splitlines())
    assert exported == local_stack.env
    for name in ("MLFLOW_TRACKING_URI", "MLFLOW_S3_ENDPOINT_URL", "AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY"):
        assert exported[name]
    assert exported["ARTIFACT_BUCKET"] == local_stack.stack.settings.bucket


def test_status_and_up_output_never_show_the_secret_key(local_stack):
    state = local_stack.stack.settings.state_dir
    secrets = (local_stack.env["AWS_SECRET_ACCESS_KEY"], local_stack.env["MLFLOW_TRACKING_PASSWORD"])
    for command in ("status", "up"):
        result = _cli(command, state_dir=state)
        assert result.returncode == 0, result.stderr
        assert not any(secret in result.stdout + result.stderr for secret in secrets)
    assert "MLFLOW_TRACKING_URI=" in _cli("up", state_dir=state).stdout


def test_credentials_are_generated_private_and_unique(local_stack, tmp_path):
    secrets_file = local_stack.stack.settings.secrets_file
    assert stat.S_IMODE(secrets_file.stat().st_mode) == 0o600
    other = load_or_create(tmp_path / "credentials.json")
    assert other.s3_access_key != local_stack.env["AWS_ACCESS_KEY_ID"]
    assert other.s3_secret_key != local_stack.env["AWS_SECRET_ACCESS_KEY"]
    assert load_or_create(tmp_path / "credentials.json") == other


def test_wrong_s3_key_is_refused_by_the_store(local_stack):
    settings = local_stack.stack.settings
    client = object_store.s3_client(settings, local_stack.env["AWS_ACCESS_KEY_ID"], "not-the-secret")
    with pytest.raises(Exception, match="SignatureDoesNotMatch"):
        client.list_objects_v2(Bucket=settings.bucket)


def test_up_after_a_crash_recovers(local_stack):
    """kill -9 of the MLflow server leaves a stale PID file and an orphaned worker; `up` must cope with both."""
    stack = local_stack.stack
    mlflow = next(svc for svc in SERVICES if svc.name == "mlflow")
    pid = stack.process(mlflow).running_pid()
    os.kill(pid, signal.SIGKILL)
    for _ in range(50):
        if stack.process(mlflow).running_pid() is None:
            break
        time.sleep(0.1)
    assert stack.status()["mlflow"] is None
    stack.up(log=lambda _msg: None)
    new_pid = stack.status()["mlflow"]
    assert new_pid and new_pid != pid
    assert run_smoke_check(stack).metric == 42.0


def test_busy_port_fails_in_one_line_and_starts_nothing(tmp_path):
    with socket.socket() as blocker:
        blocker.bind(("127.0.0.1", 0))
        blocker.listen()
        busy = blocker.getsockname()[1]
        settings = _isolated_settings(tmp_path, mlflow_port=busy)
        with pytest.raises(StackError, match=rf"^port {busy} for mlflow is already in use; .*--mlflow-port"):
            LocalStack(settings).up(log=lambda _msg: None)
        assert LocalStack(settings).status() == {"postgres": None, "s3": None, "mlflow": None}
        assert not settings.state_dir.exists(), "a refused `up` must leave no (empty) state directory"

        postgres_port, s3_port = free_ports(2)
        ports = ["--postgres-port", str(postgres_port), "--s3-port", str(s3_port), "--mlflow-port", str(busy)]
        result = _cli(*ports, "up", state_dir=tmp_path / "cli-stack")
    assert result.returncode == 1
    assert result.stderr.strip().count("\n") == 0
    assert f"port {busy}" in result.stderr and "--mlflow-port" in result.stderr
    assert "Traceback" not in result.stderr
    assert not (tmp_path / "cli-stack").exists()


def test_failed_service_start_stops_what_was_started(tmp_path, monkeypatch):
    fake = tmp_path / "weed"
    fake.write_text("#!/bin/sh\necho 'F1129 s3 gateway: cannot listen: address already in use'\nexit 1\n")
    fake.chmod(0o755)
    monkeypatch.setattr(object_store, "weed_binary", lambda: fake)
    stack = LocalStack(_isolated_settings(tmp_path))
    with pytest.raises(StackError) as info:
        stack.up(log=lambda _msg: None)
    assert str(info.value).startswith("s3 exited during start-up")
    assert "cannot listen: address already in use" in str(info.value)
    assert stack.status() == {"postgres": None, "s3": None, "mlflow": None}


def test_down_when_nothing_runs(tmp_path):
    result = _cli("down", state_dir=tmp_path / "never-started")
    assert result.returncode == 0
    assert result.stdout.strip() == "nothing was running"
