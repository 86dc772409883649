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


#: ``model_name`` value meaning "log the model, register nothing": a word, because MLflow's Kubernetes backend
#: delivers an empty value as the two characters ``''`` (see :func:`reject_quoted`).
NO_MODEL = "none"


def reject_quoted(argv: Sequence[str], prog: str) -> None:
    """Refuse a value that arrived wrapped in single quotes.

    MLflow's Kubernetes backend shell-quotes every token of the entry point's command (``shlex.quote``) and the
    Job runs that list as its container ``command``, with no shell to remove the quotes: ``-P model_name=""``
    arrives as ``''`` and ``-P fpath="a b"`` as ``'a b'``. No value of ours is legitimately wrapped in quotes.
    """
    for index, token in enumerate(argv):
        if len(token) >= 2 and token[0] == token[-1] == "'":
            option = argv[index - 1] if index and argv[index - 1].startswith("--") else f"argument {index + 1}"
            raise TrainerError(
                f"{prog}: {option} arrived quoted as {token} (MLflow's Kubernetes backend quotes values that need "
                "shell quoting and runs the command without a shell)",
                f"pass a value without spaces, quotes or shell characters (model_name={NO_MODEL}: register nothing)",
            )


def model_name(value: str) -> str:
    """``--model-name`` type: ``none`` (or empty, from a shell) means do not register; returns '' for that."""
    return "" if value.strip().lower() in {NO_MODEL, ""} else value


class OneLineParser(argparse.ArgumentParser):
    """argparse that reports a bad option in one line (argparse prints usage plus the error by default) and
    refuses values that arrived quoted (see :func:`reject_quoted`)."""

    def parse_args(self, args: Sequence[str] | None = None, namespace: argparse.Namespace | None = None):
        reject_quoted(list(sys.argv[1:] if args is None else args), self.prog)
        return super().parse_args(args, namespace)

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
