"""The lifecycle tests run searches against the session's stack or a stack of their own; each stack has its own
login, which :func:`search_process.tracking_client` puts into this process's environment (MLflow's client reads it
there at every request)."""

from __future__ import annotations

import os
from collections.abc import Iterator

import pytest
from search_process import LOGIN


@pytest.fixture(autouse=True)
def _stack_login_undone() -> Iterator[None]:
    """Put back the login this process had before the test, so a test's stack never signs in the next test."""
    saved = {name: os.environ.get(name) for name in LOGIN}
    yield
    for name, value in saved.items():
        if value is None:
            os.environ.pop(name, None)
        else:
            os.environ[name] = value
