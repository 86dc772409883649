"""Free space where the stack writes: a full disk is named as such, before anything waits on it.

With its state directory on a full disk, PostgreSQL stops (it cannot write its log) and the MLflow server's
requests hang; a client would wait minutes for timeouts and then see "Read timed out". Commands that need the
services look at the disk first, and ``status`` adds a line when it is full.
"""

from __future__ import annotations

import errno
import shutil
from pathlib import Path

from local_stack.errors import StackError

#: Below this much free space the services cannot be trusted to write (PostgreSQL's WAL segments are 16 MiB).
MIN_FREE_BYTES = 64 * 1024 * 1024


def _existing(path: Path) -> Path:
    while not path.exists() and path != path.parent:
        path = path.parent
    return path


def full_disk(path: Path) -> str | None:
    """One line naming the full disk under ``path`` and the fix, or None while there is room."""
    try:
        usage = shutil.disk_usage(_existing(path))
    except OSError:
        return None
    if usage.free >= MIN_FREE_BYTES:
        return None
    return (
        f"the disk holding {path} is full ({usage.free // 2**20} MiB free of {usage.total // 2**20} MiB); "
        "free space there (PostgreSQL and the S3 store write there), then `make up`"
    )


def require_room(path: Path) -> None:
    problem = full_disk(path)
    if problem:
        raise StackError(problem)


def describe_os_error(exc: OSError, state_dir: Path) -> str:
    """One line for an OSError that escaped (a full disk, a read-only or vanished state directory)."""
    where = exc.filename or state_dir
    if exc.errno == errno.ENOSPC:
        return f"the disk holding {where} is full ({exc.strerror}); free space there and retry"
    if exc.errno in (errno.EROFS, errno.EACCES, errno.EPERM):
        return f"cannot write {where} ({exc.strerror}); choose a writable --state-dir (or LOCAL_STACK_DIR)"
    return f"{where}: {exc.strerror or exc}; check --state-dir (or LOCAL_STACK_DIR)"
