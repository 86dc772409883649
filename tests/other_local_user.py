"""What another user of the same machine gets from a Unix socket of ours: the attacker tests' shared probe.

The tests run as root, which file modes do not stop, so the probe drops to ``nobody`` (no groups) and tries to
connect, as any other local account would.
"""

from __future__ import annotations

import subprocess


def connect_as_nobody(path: str) -> subprocess.CompletedProcess[str]:
    """Connect to the Unix socket at ``path`` as ``nobody``; a locked socket ends it with ``PermissionError``."""
    return subprocess.run(
        ["/usr/bin/python3", "-c", f"import socket; socket.socket(socket.AF_UNIX).connect({path!r})"],
        user="nobody",
        group="nogroup",
        extra_groups=[],
        capture_output=True,
        text=True,
        check=False,
    )
