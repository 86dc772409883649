"""A full disk under the state directory: `check` used to hang for minutes (the MLflow server waits on a database
that cannot write); now it names the full disk in one line within seconds, `status` adds the disk's line, and once
space is freed `up` and `check` recover.

The small disk is a 300 MiB tmpfs mounted for the test (root, as CI runs) and unmounted afterwards.
"""

from __future__ import annotations

import errno
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from local_stack import LocalStack
from tests.local_stack.stack_cli import assert_one_line_error, run_cli
from tests.stack_fixtures import started_stack_cli

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def small_disk(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    mount = tmp_path_factory.mktemp("small-disk")
    subprocess.run(["mount", "-t", "tmpfs", "-o", "size=300m,mode=0700", "tmpfs", str(mount)], check=True)
    try:
        yield mount
    finally:
        subprocess.run(["umount", "--lazy", str(mount)], check=True)


@pytest.fixture(scope="module")
def stack_on_small_disk(small_disk: Path) -> Iterator[LocalStack]:
    with started_stack_cli(small_disk / "stack") as stack:
        yield stack


def _fill(disk: Path) -> Path:
    filler = disk / "filler"
    chunk = b"\0" * (1 << 20)
    with filler.open("wb") as handle:
        try:
            while True:
                handle.write(chunk)
                handle.flush()
        except OSError as exc:
            assert exc.errno == errno.ENOSPC
    return filler


def test_check_names_a_full_disk_at_once_and_the_stack_recovers(stack_on_small_disk, small_disk):
    stack = stack_on_small_disk
    filler = _fill(small_disk)
    try:
        checked = run_cli(stack, "check", timeout=150)  # a hang would raise TimeoutExpired here
        assert_one_line_error(checked, "disk holding", str(stack.settings.state_dir), "is full", "free space")
        status = run_cli(stack, "status", timeout=120)
        assert status.returncode == 0
        disk_lines = [line for line in status.stdout.splitlines() if line.startswith("disk")]
        assert len(disk_lines) == 1 and "FULL" in disk_lines[0], status.stdout
    finally:
        filler.unlink()
    assert run_cli(stack, "up", timeout=240).returncode == 0
    checked = run_cli(stack, "check", timeout=150)
    assert checked.returncode == 0, checked.stderr
    assert "disk" not in {line.split()[0] for line in run_cli(stack, "status").stdout.splitlines() if line}
