"""Writing the stack's small state files so that a reader never sees half of one.

A crash, a kill or a full disk in the middle of a write used to leave a truncated PID file, certificate or
settings file, and the next command then misread it. Each file goes to a temporary name in the same folder, is
fsynced, and replaces the old one by rename; a failed write leaves the old file (or none) and no temporary file.
"""

from __future__ import annotations

import os
from pathlib import Path


def write_atomically(path: Path, data: str | bytes, mode: int = 0o600) -> None:
    """Replace ``path`` by ``data`` (owner-only by default, from the first byte)."""
    payload = data.encode() if isinstance(data, str) else data
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, mode)
        with os.fdopen(fd, "wb") as handle:
            handle.write(payload)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
