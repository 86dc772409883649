"""A second real local stack for the day-two tests, which restart its MLflow server (restore), hard-delete runs
(gc) and fill it with data: the suite's shared stack must stay as the other tests expect it.

It is started with ``python -m local_stack up`` in a child process, as a user starts it: its servers then
belong to no test process, so ``restore`` (another process) can stop and restart the MLflow server cleanly.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from local_stack import LocalStack
from tests.stack_fixtures import started_stack_cli


@pytest.fixture(scope="session")
def day_two_stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalStack]:
    with started_stack_cli(tmp_path_factory.mktemp("day-two-stack")) as stack:
        yield stack
