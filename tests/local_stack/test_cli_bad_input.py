"""Every option of ``python -m local_stack`` given a bad value, as a careless user would: one ``error:`` line naming
the option (or the value) and the fix, exit 1 (our check) or 2 (the command line's shape), no traceback, nothing
created. No stack runs here: each value must be refused before anything starts or is written.

The table's length is the local stack CLI's figure in docs/reliability.md.
"""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from local_stack.settings import REPO_ROOT, StackSettings, default_state_dir

STATE = "{state}"  # replaced by a fresh, not yet existing directory under tmp_path
FILE = "{file}"  # an existing plain file
READ_ONLY = "{ro}"  # a directory on a read-only mount

#: (argv, words the one error line must contain)
CASES: list[tuple[list[str], tuple[str, ...]]] = [
    # --state-dir
    (["--state-dir", FILE, "up"], ("is a file", "--state-dir")),
    (["--state-dir", FILE, "status"], ("is a file", "--state-dir")),
    (["--state-dir", f"{FILE}/sub", "down"], ("lies under the file", "--state-dir")),
    (["--state-dir", "/proc/self/stack", "up"], ("kernel file system", "--state-dir")),
    (["--state-dir", "/sys/stack", "status"], ("kernel file system", "--state-dir")),
    (["--state-dir", "", "status"], ("--state-dir is empty",)),
    (["--state-dir", f"{READ_ONLY}/stack", "up"], ("cannot be written", "read-only", "--state-dir")),
    (["--state-dir", f"{READ_ONLY}/stack", "backup"], ("cannot be written", "--state-dir")),
    (["--state-dir"], ("--state-dir", "expected one argument")),
    # the three ports (more values per port in test_settings.py)
    (["--postgres-port", "abc", "status"], ("--postgres-port", "'abc'", "1-65535")),
    (["--s3-port", "0", "up"], ("--s3-port", "1-65535")),
    (["--mlflow-port", "65536", "up"], ("--mlflow-port", "1-65535")),
    # commands and their shape
    ([], ("required: command",)),
    (["bogus"], ("invalid choice: 'bogus'",)),
    (["up", "--auth", "yes"], ("unrecognized arguments: yes",)),
    (["down", "--wipe=1"], ("--wipe", "ignored explicit argument")),
    (["status", "extra"], ("unrecognized arguments: extra",)),
    # load
    (["load", "--loggers", "abc"], ("--loggers", "'abc'", "whole number")),
    (["load", "--loggers", "0"], ("--loggers 0", "1-256")),
    (["load", "--loggers", "100000"], ("--loggers 100000", "1-256")),
    (["load", "--loggers", "1.5"], ("--loggers", "'1.5'")),
    (["load", "--seconds", "nan"], ("--seconds", "'nan'", "above 0")),
    (["load", "--seconds", "inf"], ("--seconds", "'inf'")),
    (["load", "--seconds", "-1"], ("--seconds", "'-1'")),
    (["load", "--seconds", "0"], ("--seconds", "'0'")),
    (["load", "--seconds", "abc"], ("--seconds", "'abc'", "not a number")),
    (["load", "--seconds", "1e9"], ("--seconds", "'1e9'", "86400")),
    # gc
    (["gc", "--older-than", "1..2d"], ("--older-than", "'1..2d'", "30d")),
    (["gc", "--older-than", "99999999999d"], ("--older-than", "36500 days")),
    (["gc", "--older-than", "abc"], ("--older-than", "'abc'")),
    (["gc", "--older-than", ""], ("--older-than", "''")),
    (["gc", "--older-than=-1d"], ("--older-than", "'-1d'")),
    (["gc", "--older-than", "d"], ("--older-than", "'d'")),
    # restore and upgrade-check
    (["restore"], ("required: key",)),
    (["restore", ""], ("'' is not a backup key",)),
    (["restore", "backups/../credentials.json"], ("not a backup key",)),
    (["restore", "/etc/passwd"], ("not a backup key",)),
    (["upgrade-check", "--backup", "../x.dump"], ("not a backup key",)),
    (["upgrade-check", "--python", "/nonexistent/python"], ("--python", "not an executable Python")),
]


@pytest.fixture(scope="module")
def read_only_dir(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """A small read-only tmpfs (as a read-only mount would be): root ignores file modes, not a read-only mount."""
    mount = tmp_path_factory.mktemp("read-only")
    subprocess.run(["mount", "-t", "tmpfs", "-o", "ro,size=1m", "tmpfs", str(mount)], check=True)
    try:
        yield mount
    finally:
        subprocess.run(["umount", str(mount)], check=True)


@pytest.mark.parametrize(("argv", "words"), CASES, ids=[" ".join(argv) or "(nothing)" for argv, _ in CASES])
def test_a_bad_value_is_one_line_naming_it_and_nothing_is_created(tmp_path, read_only_dir, argv, words):
    state = tmp_path / "stack"
    plain = tmp_path / "a-file"
    plain.write_text("not a directory\n")
    real = [arg.format(state=state, file=plain, ro=read_only_dir) for arg in argv]
    if "--state-dir" not in real:
        real = ["--state-dir", str(state), *real]
    env = {k: v for k, v in os.environ.items() if not k.startswith("LOCAL_STACK_")}
    result = subprocess.run(
        [sys.executable, "-m", "local_stack", *real],
        capture_output=True,
        text=True,
        cwd=REPO_ROOT,
        env=env,
        timeout=60,
        check=False,
    )
    assert result.returncode in (1, 2), result
    assert result.stdout == ""
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), result.stderr
    for word in words:
        assert word in lines[0], (word, lines[0])
    assert not state.exists(), "a refused command created the state directory"
    assert plain.read_text() == "not a directory\n"


def test_down_wipe_deletes_only_a_stack_state_directory(tmp_path):
    """`--state-dir ~ down --wipe` by mistake would delete a home directory: a folder without the stack's files
    is refused and kept whole."""
    precious = tmp_path / "home"
    precious.mkdir()
    (precious / "thesis.tex").write_text("years of work")
    result = subprocess.run(
        [sys.executable, "-m", "local_stack", "--state-dir", str(precious), "down", "--wipe"],
        capture_output=True,
        text=True,
        cwd=REPO_ROOT,
        timeout=60,
        check=False,
    )
    assert result.returncode == 1 and "not a local stack's state directory" in result.stderr, result
    assert (precious / "thesis.tex").read_text() == "years of work"


def test_an_empty_local_stack_dir_means_the_default_not_the_current_directory(monkeypatch):
    """`LOCAL_STACK_DIR=` (empty) used to become Path(""), the current directory, which `down --wipe` deletes."""
    monkeypatch.setenv("LOCAL_STACK_DIR", "")
    assert default_state_dir() == REPO_ROOT / ".stack"
    assert StackSettings().state_dir == (REPO_ROOT / ".stack").resolve()
