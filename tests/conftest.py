"""Session-wide fixtures: one real local stack (PostgreSQL, SeaweedFS S3, MLflow server) for the whole test run.

It runs in a temporary state directory on free ports, so it never touches a developer's own stack, and it is
stopped and wiped when the session ends, leaving no process behind.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

import pytest

from local_stack import LocalStack
from tests.stack_fixtures import started_stack

# ---- test lanes (issue 18): `make check` runs `-m "not integration"`, `make test` runs everything ----
# A test that uses one of these fixtures starts a service (a local stack, a Ray cluster), so it is an integration
# test whether or not its module marks it; the fast lane must never start one by accident.
SERVICE_FIXTURES = frozenset({"local_stack", "day_two_stack", "fault_stack", "own_stack", "cluster"})


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    for item in items:
        if SERVICE_FIXTURES.intersection(getattr(item, "fixturenames", ())):
            item.add_marker(pytest.mark.integration)


# ---- end of test lanes


@dataclass(frozen=True)
class RunningStack:
    """A started stack and the client environment (tracking URI, S3 endpoint and keys, bucket) to use it."""

    stack: LocalStack
    env: dict[str, str]


@pytest.fixture(scope="session")
def local_stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningStack]:
    with started_stack(tmp_path_factory.mktemp("local-stack")) as stack:
        yield RunningStack(stack, stack.client_env())
