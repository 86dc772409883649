"""A second real local stack for the day-two tests, which restart its MLflow server (restore), hard-delete runs
(gc) and fill it with data: the suite's shared stack must stay as the other tests expect it.

It is started with ``python -m local_stack up`` in a child process, as a user starts it: its servers then
belong to no test process, so ``restore`` (another process) can stop and restart the MLflow server cleanly.
"""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Iterator

import pytest

from local_stack import LocalStack, StackSettings
from local_stack.processes import free_ports
from local_stack.settings import REPO_ROOT


@pytest.fixture(scope="session")
def day_two_stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalStack]:
    postgres_port, s3_port, mlflow_port = free_ports(3)
    state_dir = tmp_path_factory.mktemp("day-two-stack")
    stack = LocalStack(StackSettings.load(state_dir=state_dir))
    ports = ["--postgres-port", str(postgres_port), "--s3-port", str(s3_port), "--mlflow-port", str(mlflow_port)]
    try:
        started = subprocess.run(
            [sys.executable, "-m", "local_stack", "--state-dir", str(state_dir), *ports, "up"],
            capture_output=True,
            text=True,
            cwd=REPO_ROOT,
            timeout=300,
            check=False,
        )
        assert started.returncode == 0, started.stderr
        stack = LocalStack(StackSettings.load(state_dir=state_dir))
        yield stack
    finally:
        stack.down(wipe=True)
