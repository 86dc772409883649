"""`make load` in short: 16 concurrent MLflow loggers for 10 s against the real stack finish with 0 errors."""

from __future__ import annotations

import re

import pytest

from local_stack.load import CALL_TYPES
from tests.local_stack.stack_cli import run_cli

pytestmark = pytest.mark.integration


def test_sixteen_concurrent_loggers_make_no_errors(local_stack):
    result = run_cli(local_stack.stack, "load", "--loggers", "16", "--seconds", "10", timeout=180)
    assert result.returncode == 0, result.stdout + result.stderr
    head = re.match(r"16 loggers for (\d+)s: (\d+) calls, ([\d.]+) calls/s, (\d+) runs, (\d+) errors", result.stdout)
    assert head, result.stdout
    seconds, calls, _rate, runs, errors = head.groups()
    assert int(errors) == 0 and "error:" not in result.stdout
    assert int(runs) >= 16 and int(calls) >= 7 * int(runs)
    assert 10 <= int(seconds) <= 60
    rows = {line.split()[0]: line.split()[1:] for line in result.stdout.splitlines()[2 : 2 + len(CALL_TYPES)]}
    assert set(rows) == set(CALL_TYPES)
    for count, p50, p95, p99, row_errors in rows.values():
        assert int(count) > 0 and int(row_errors) == 0
        assert 0 < float(p50) <= float(p95) <= float(p99)
    rss = re.search(r"MLflow server RSS \(process tree\): (\d+) MiB at start, (\d+) MiB peak", result.stdout)
    assert rss and int(rss.group(2)) >= int(rss.group(1)) > 50
