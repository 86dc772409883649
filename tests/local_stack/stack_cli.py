"""Drive ``python -m local_stack`` as a user does (a separate process, its exit code, stdout and stderr)."""

from __future__ import annotations

import subprocess
import sys

from local_stack import LocalStack
from local_stack.settings import REPO_ROOT


def run_cli(stack: LocalStack, *args: str, timeout: float = 300) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "local_stack", "--state-dir", str(stack.settings.state_dir), *args],
        capture_output=True,
        text=True,
        cwd=REPO_ROOT,
        timeout=timeout,
        check=False,
    )


def assert_one_line_error(result: subprocess.CompletedProcess[str], *words: str) -> None:
    """A user error: exit 1, nothing on stdout, one ``error:`` line naming the problem, no traceback."""
    assert result.returncode == 1, result
    assert result.stdout == ""
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), result.stderr
    for word in words:
        assert word in lines[0]
