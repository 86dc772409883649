"""User-fixable errors and the CLI wrapper that reports them as one line.

The seed swallowed every exception and exited 0; the opposite mistake is a 40-line traceback for a typo in a path.
Every check that a user can act on raises :class:`TrainerError` with the problem *and* the fix, and each entry
point runs through :func:`run_cli`, which prints ``error: <problem>; <fix>`` to stderr and exits 2. Anything else
is a bug and keeps its traceback.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable, Sequence
from typing import NoReturn

#: Exit status for a problem the user can fix (bad input, unreachable service). 1 is left for failed work.
EXIT_USAGE = 2
EXIT_FAILED = 1


class TrainerError(Exception):
    """A problem the user can fix; ``str()`` is one line naming the problem and the fix."""

    def __init__(self, problem: str, fix: str, exit_code: int = EXIT_USAGE) -> None:
        super().__init__(problem, fix)
        self.problem = problem
        self.fix = fix
        self.exit_code = exit_code

    def __str__(self) -> str:
        return f"{self.problem}; {self.fix}"


class OneLineParser(argparse.ArgumentParser):
    """argparse that reports a bad option in one line (argparse prints usage plus the error by default)."""

    def error(self, message: str) -> NoReturn:
        raise TrainerError(f"{self.prog}: {message}", f"see `{self.prog} --help` for the accepted options")


def positive_int(name: str, value: int) -> int:
    """Validate counts such as ``max_evals`` up front, before data is read or runs are created."""
    if value < 1:
        raise TrainerError(
            f"{name} must be at least 1 (got {value})",
            f"pass --{name.replace('_', '-')} 1 or more (MLproject: -P {name}=1 or more)",
        )
    return value


def run_cli(main: Callable[[Sequence[str] | None], int], argv: Sequence[str] | None = None) -> int:
    """Run an entry point's ``main`` and turn a :class:`TrainerError` into one line on stderr and an exit code."""
    try:
        return main(argv)
    except TrainerError as exc:
        print(f"error: {exc}", file=sys.stderr, flush=True)
        return exc.exit_code
    except KeyboardInterrupt:
        print("error: interrupted; run the command again to start over", file=sys.stderr)
        return 130
