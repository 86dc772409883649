"""Fixtures of the infra tests; the machinery lives in `mock_harness` (a uniquely named module, because the
other test folders have their own `conftest.py` and `import conftest` would be ambiguous)."""

from __future__ import annotations

from collections.abc import Callable, Iterator

import pulumi
import pytest
from mock_harness import Deployment, run_program


@pytest.fixture
def deploy() -> Iterator[Callable[..., Deployment]]:
    """`deploy(config_overrides, secret_keys=...)` runs the program once and returns what it declared."""
    yield run_program
    pulumi.runtime.set_all_config({}, secret_keys=[])


@pytest.fixture(scope="module")
def default_deployment() -> Deployment:
    """The program with the default config (as `Pulumi.dev.yaml` deploys it), run once per module."""
    return run_program({})
