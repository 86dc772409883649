"""Fixtures of the browser tests: a real headless Chromium per test, saved (screenshot, console log, responses)
when the test fails, under a folder the failure report names; skipped with one line when it is not installed."""

from __future__ import annotations

import re
import sys
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

# The declared tracking server's machinery lives beside tests/infra/conftest.py (importable by bare name there).
sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "infra"))

from ui_browser import Browser, missing

_BROWSERS = pytest.StashKey[list[Browser]]()


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo) -> Iterator[None]:
    outcome = yield
    report = outcome.get_result()
    browsers = item.stash.get(_BROWSERS, [])
    if report.when == "call" and report.failed and browsers:
        base = item.config._tmp_path_factory.getbasetemp() / "ui-failures" / re.sub(r"\W+", "_", item.name)
        saved = []
        for n, browser in enumerate(browsers):
            try:
                saved += browser.save(base / f"browser{n}")
            except Exception as exc:  # a dead browser must not hide the test's own failure
                saved.append(Path(f"(browser {n} not saved: {type(exc).__name__})"))
        report.sections.append(("browser artifacts", "\n".join(str(p) for p in saved)))


@pytest.fixture
def browser(request: pytest.FixtureRequest) -> Iterator[Callable[..., Browser]]:
    """`browser(hosts=..., auth=...)` opens a headless Chromium; all are closed after the test."""
    reason = missing()
    if reason:
        pytest.skip(reason)
    opened: list[Browser] = []
    request.node.stash[_BROWSERS] = opened

    def open_browser(**kwargs) -> Browser:
        opened.append(Browser(**kwargs))
        return opened[-1]

    yield open_browser
    for b in opened:
        b.close()
