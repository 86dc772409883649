"""Run an ``mlflow`` CLI command against a stack database without its password on the command line.

``mlflow gc --backend-store-uri URI`` and ``mlflow db upgrade URI`` take the URI (password included) as an
argument, where ``ps`` shows it to every user. Here the command line carries a placeholder, and a two-line
bootstrap swaps in the URI from the child's environment before MLflow's own CLI parses its arguments.
"""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Mapping, Sequence

from local_stack.errors import StackError

#: Stands for the backend store URI on the command line; replaced from ``MLFLOW_BACKEND_STORE_URI``.
BACKEND_URI = "@backend-store-uri"

_BOOTSTRAP = (
    "import os, sys\n"
    f"sys.argv[1:] = [os.environ['MLFLOW_BACKEND_STORE_URI'] if a == {BACKEND_URI!r} else a for a in sys.argv[1:]]\n"
    "from mlflow.cli import cli; cli(prog_name='mlflow')\n"
)


def run_mlflow(
    args: Sequence[str],
    env: Mapping[str, str],
    python: str = sys.executable,
    timeout: float = 600,
) -> subprocess.CompletedProcess[str]:
    """Run ``mlflow ARGS`` with ``python``'s MLflow; ``env`` must hold ``MLFLOW_BACKEND_STORE_URI``.

    A failure raises StackError with the command's last output lines (which never contain the URI).
    """
    try:
        result = subprocess.run(
            [python, "-c", _BOOTSTRAP, *args],
            env=dict(env),
            capture_output=True,
            text=True,
            timeout=timeout,
            check=False,
        )
    except FileNotFoundError:
        raise StackError(f"python interpreter {python} not found; pass the path of a Python with MLflow") from None
    if result.returncode != 0:
        tail = "\n".join((result.stderr or result.stdout).strip().splitlines()[-5:])
        raise StackError(f"`mlflow {args[0]}` failed (exit {result.returncode}):\n{tail}")
    return result
