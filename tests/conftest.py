"""Session-wide fixtures: one real local stack (PostgreSQL, SeaweedFS S3, MLflow server) for the whole test run.

It runs in a temporary state directory on free ports, so it never touches a developer's own stack, and it is
stopped and wiped when the session ends, leaving no process behind.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

import pytest

from local_stack import LocalStack, StackSettings
from local_stack.processes import free_ports


@dataclass(frozen=True)
class RunningStack:
    """A started stack and the client environment (tracking URI, S3 endpoint and keys, bucket) to use it."""

    stack: LocalStack
    env: dict[str, str]


@pytest.fixture(scope="session")
def local_stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningStack]:
    postgres_port, s3_port, mlflow_port = free_ports(3)
    settings = StackSettings(
        state_dir=tmp_path_factory.mktemp("local-stack"),
        postgres_port=postgres_port,
        s3_port=s3_port,
        mlflow_port=mlflow_port,
    )
    stack = LocalStack(settings)
    try:
        stack.up(log=lambda _msg: None)
        yield RunningStack(stack, stack.client_env())
    finally:
        stack.down(wipe=True)
