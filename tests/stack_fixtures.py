"""Starting and stopping a local stack of a test's own, in one place.

The suite shares one stack (`tests/conftest.py`); tests that kill services, restore databases or change modes
need one of their own so the shared one survives. Both kinds start on free ports in a temporary state directory
and are stopped and wiped afterwards, leaving no process behind.
"""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

from local_stack import LocalStack, StackSettings
from local_stack.processes import free_ports
from local_stack.settings import REPO_ROOT


@contextmanager
def started_stack(state_dir: Path) -> Iterator[LocalStack]:
    """A stack started from this process (its servers are children of pytest); MLflow asks for its login."""
    postgres_port, s3_port, mlflow_port = free_ports(3)
    settings = StackSettings(state_dir=state_dir, postgres_port=postgres_port, s3_port=s3_port, mlflow_port=mlflow_port)
    stack = LocalStack(settings)
    try:
        stack.up(log=lambda _msg: None)
        yield stack
    finally:
        stack.down(wipe=True)


@contextmanager
def started_stack_cli(state_dir: Path) -> Iterator[LocalStack]:
    """A stack started by `python -m local_stack up` in a child process, as a user starts it: its servers are not
    pytest's children, so another process (restore, a second CLI call) can stop and reap them."""
    ports = dict(zip(("--postgres-port", "--s3-port", "--mlflow-port"), map(str, free_ports(3)), strict=True))
    stack = LocalStack(StackSettings(state_dir=state_dir))
    try:
        result = subprocess.run(
            [sys.executable, "-m", "local_stack", "--state-dir", str(state_dir), *sum(ports.items(), ()), "up"],
            capture_output=True,
            text=True,
            cwd=REPO_ROOT,
            timeout=300,
            check=False,
        )
        assert result.returncode == 0, result.stderr
        stack = LocalStack(StackSettings.load(state_dir=state_dir))
        yield stack
    finally:
        stack.down(wipe=True)


def use_stack(monkeypatch: pytest.MonkeyPatch, stack: LocalStack) -> dict[str, str]:
    """Point this test's MLflow clients at ``stack`` with its login, as ``eval "$(make env)"`` does in a shell.

    MLflow's client takes the login from the environment only (``MLFLOW_TRACKING_USERNAME``/``PASSWORD``), and each
    stack has its own admin password: a test on a stack of its own must set that stack's, not the shared one's.
    """
    env = stack.client_env()
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    return env
