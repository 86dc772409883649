"""Which stack a command means: ports saved by the last `up`, overridden by the environment and by options."""

from __future__ import annotations

import pytest

from local_stack import StackError, StackSettings


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


def test_a_port_that_is_not_a_number_is_one_clear_error(tmp_path, monkeypatch):
    monkeypatch.setenv("LOCAL_STACK_S3_PORT", "eighty")
    with pytest.raises(StackError, match=r"^LOCAL_STACK_S3_PORT='eighty' is not a port number; .* 8333$"):
        StackSettings.load(state_dir=tmp_path)
