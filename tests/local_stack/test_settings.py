"""Which stack a command means: ports saved by the last `up`, overridden by the environment and by options."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

from local_stack import StackError, StackSettings
from local_stack.processes import free_ports
from local_stack.settings import REPO_ROOT
from tests.local_stack.stack_cli import assert_one_line_error


@pytest.fixture(autouse=True)
def _clean_env(monkeypatch):
    for name in ("LOCAL_STACK_POSTGRES_PORT", "LOCAL_STACK_S3_PORT", "LOCAL_STACK_MLFLOW_PORT", "LOCAL_STACK_DIR"):
        monkeypatch.delenv(name, raising=False)


def test_later_commands_find_the_ports_of_the_last_up(tmp_path):
    StackSettings(state_dir=tmp_path, mlflow_port=5123, s3_port=8123).save()
    loaded = StackSettings.load(state_dir=tmp_path)
    assert (loaded.mlflow_port, loaded.s3_port, loaded.postgres_port) == (5123, 8123, 54329)
    assert loaded.tracking_uri == "http://127.0.0.1:5123"


def test_environment_then_options_win_over_saved_ports(tmp_path, monkeypatch):
    StackSettings(state_dir=tmp_path, mlflow_port=5123).save()
    monkeypatch.setenv("LOCAL_STACK_MLFLOW_PORT", "5200")
    assert StackSettings.load(state_dir=tmp_path).mlflow_port == 5200
    assert StackSettings.load(state_dir=tmp_path, mlflow_port=5300).mlflow_port == 5300


@pytest.mark.parametrize("raw", ["0", "70000", "-1", "abc", "80.5"])
@pytest.mark.parametrize("how", ["env", "option"])
def test_a_bad_port_is_one_line_and_nothing_is_saved(tmp_path, monkeypatch, raw, how):
    """Port 0 used to be accepted (a 131 s wait, then saved); 70000 and 'abc' gave tracebacks."""
    state = tmp_path / "stack"
    env = {**os.environ, "LOCAL_STACK_MLFLOW_PORT": raw} if how == "env" else dict(os.environ)
    args = ["--mlflow-port", raw] if how == "option" else []
    result = subprocess.run(
        [sys.executable, "-m", "local_stack", "--state-dir", str(state), *args, "up"],
        capture_output=True,
        text=True,
        cwd=REPO_ROOT,
        env=env,
        timeout=60,
        check=False,
    )
    source = "LOCAL_STACK_MLFLOW_PORT" if how == "env" else "--mlflow-port"
    assert_one_line_error(result, source, repr(raw), "1-65535", "--mlflow-port", "LOCAL_STACK_MLFLOW_PORT")
    assert not state.exists()


@pytest.mark.parametrize(
    ("content", "says"),
    [
        ("{not json", "not valid JSON"),
        ("[5000]", "not a JSON object"),
        ('{"postgres_port": 1, "s3_port": 2, "mlflow_port": "5000"}', "mlflow_port='5000' has the wrong type"),
        ('{"postgres_port": 1, "s3_port": 2, "mlflow_port": 0}', "mlflow_port=0 is not in 1-65535"),
        ('{"postgres_port": 1, "s3_port": 2, "mlflow_port": 3, "auth": "yes"}', "auth='yes' has the wrong type"),
        ('{"mlflow_prot": 5000}', "unknown keys mlflow_prot"),
        ('{"postgres_port": 1, "mlflow_port": 3}', "lacks s3_port"),
    ],
)
def test_a_damaged_stack_json_is_one_line_naming_it(tmp_path, content, says):
    (tmp_path / "stack.json").write_text(content)
    with pytest.raises(StackError) as info:
        StackSettings.load(state_dir=tmp_path)
    message = str(info.value)
    assert message.startswith(str(tmp_path / "stack.json")) and says in message
    assert "delete" in message and "make up" in message and "\n" not in message


def test_a_damaged_stack_json_stops_status_in_one_line(tmp_path):
    state = tmp_path / "stack"
    state.mkdir()
    (state / "stack.json").write_text('{"postgres_port": 1, "s3_port": 99999, "mlflow_port": 3}')
    result = subprocess.run(
        [sys.executable, "-m", "local_stack", "--state-dir", str(state), "status"],
        capture_output=True,
        text=True,
        cwd=REPO_ROOT,
        timeout=60,
        check=False,
    )
    assert_one_line_error(result, str(state / "stack.json"), "s3_port=99999", "delete")


@pytest.mark.parametrize(
    ("content", "says"),
    [
        ("{", "not valid JSON"),
        ('"x"', "not a JSON object"),
        ('{"s3_access_key": 5}', "s3_access_key must be non-empty strings"),
        ('{"s3_access_key": "A", "s3_secret_key": "B"}', "lacks postgres_superuser_password"),
    ],
)
def test_a_damaged_credentials_file_stops_up_in_one_line_and_is_kept(tmp_path, content, says):
    state = tmp_path / "stack"
    state.mkdir()
    secrets = state / "credentials.json"
    secrets.write_text(content)
    ports = [str(p) for p in free_ports(3)]
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "local_stack",
            "--state-dir",
            str(state),
            "--postgres-port",
            ports[0],
            "--s3-port",
            ports[1],
            "--mlflow-port",
            ports[2],
            "up",
        ],
        capture_output=True,
        text=True,
        cwd=REPO_ROOT,
        timeout=60,
        check=False,
    )
    assert_one_line_error(result, str(secrets), says, "restore it", "--wipe")
    assert secrets.read_text() == content, "the file holding the keys to the data is never replaced"
    assert not (state / "stack.json").exists() and not (state / "postgres").exists()
