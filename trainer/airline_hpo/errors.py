"""User-fixable errors and the CLI wrapper that reports them as one line.

The seed swallowed every exception and exited 0; the opposite mistake is a 40-line traceback for a typo in a path.
Every check that a user can act on raises :class:`TrainerError` with the problem *and* the fix, and each entry
point runs through :func:`run_cli`, which prints ``error: <problem>; <fix>`` to stderr and exits 2 (1 for failed
work). Anything else is reported in one line too, naming the log file that holds the full traceback (and
everything the libraries logged, such as the HTTP client's retries): ``$AIRLINE_HPO_LOG_DIR`` or
``~/.cache/airline-hpo/logs``. ``--debug`` (or ``AIRLINE_HPO_DEBUG=1``) also sends that detail to stderr.
"""

from __future__ import annotations

import argparse
import contextlib
import logging
import math
import os
import sys
import tempfile
import time
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
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


class Stopped(TrainerError):
    """The work stopped on a signal (see :mod:`airline_hpo.lifecycle.shutdown`); ``str()`` is the user's one line.

    Defined here, beside the CLI wrapper that reports it, so that this bottom module imports nothing of ours.
    """

    def __init__(self, line: str, exit_code: int) -> None:
        super().__init__(line, "", exit_code)

    def __str__(self) -> str:
        return self.problem


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


#: Integers go to C ints in scikit-learn, cuML and Ray: a larger value is an overflow deep inside, not a setting.
INT_MAX = 2**31 - 1
#: numpy, scikit-learn and cuML take seeds in [0, 2**32 - 1].
SEED_MAX = 2**32 - 1


def number(
    kind: type[int] | type[float] = float,
    low: float | None = None,
    high: float | None = None,
    *,
    above: bool = False,
    below: bool = False,
) -> Callable[[str], float]:
    """An argparse ``type=`` for a numeric option: finite, of ``kind``, at least ``low`` (above it when ``above``)
    and at most ``high`` (below it when ``below``; integers at most :data:`INT_MAX` unless told).

    argparse reports a refusal as ``argument --name: <why>``, which :class:`OneLineParser` turns into one line:
    the option is named at parse time, before anything is read, created or started. Whole numbers written as
    floats (``20.0``, ``1e3``) are integers: MLproject parameters are ``float`` typed and passed on verbatim."""
    if kind is int and high is None:
        high = INT_MAX

    def parse(text: str) -> float:
        raw = text.strip()
        try:
            value: float = int(raw) if kind is int else float(raw)
        except ValueError:
            try:
                value = float(raw)
            except ValueError:
                raise argparse.ArgumentTypeError(f"{text!r} is not a number") from None
        if not math.isfinite(value):
            raise argparse.ArgumentTypeError(f"must be a finite number (got {text})")
        if kind is int:
            if value != int(value):
                raise argparse.ArgumentTypeError(f"must be a whole number (got {text})")
            value = int(value)
        if low is not None and (value < low or (above and value == low)):
            raise argparse.ArgumentTypeError(f"must be {'above' if above else 'at least'} {_text(low)} (got {text})")
        if high is not None and (value > high or (below and value == high)):
            raise argparse.ArgumentTypeError(f"must be {'below' if below else 'at most'} {_text(high)} (got {text})")
        return value

    parse.__name__ = f"{kind.__name__} in {_range_text(low, high, above, below)}"
    parse.kind, parse.low, parse.high = kind, low, high  # type: ignore[attr-defined]
    parse.above, parse.below = above, below  # type: ignore[attr-defined]
    return parse


def _range_text(low: float | None, high: float | None, above: bool, below: bool) -> str:
    left = "(" if above or low is None else "["
    right = ")" if below or high is None else "]"
    return f"{left}{'-inf' if low is None else _text(low)}, {'inf' if high is None else _text(high)}{right}"


def _text(bound: float) -> str:
    return str(int(bound)) if float(bound).is_integer() else f"{bound:g}"


#: The option types shared by the entry points (each refusal names the option; see :func:`number`).
COUNT = number(int, 1)  # trials, trees, depth, streams: at least one
AMOUNT = number(int, 0)  # rows, failures, retries: 0 means "all" or "none"
SEED = number(int, 0, SEED_MAX)
SHARE = number(float, 0.0, 1.0, above=True)  # a fraction of rows or features: (0, 1]
PART = number(float, 0.0, 1.0, above=True, below=True)  # a part of the rows held out: (0, 1)
PORT = number(int, 0, 65535)


def check_finite(values: dict[str, object]) -> None:
    """Refuse NaN and infinity among ``values`` (a config built in code, not through the parser), by name."""
    for name, value in values.items():
        if isinstance(value, float) and not math.isfinite(value):
            raise TrainerError(f"{name} must be a finite number (got {value})", f"pass a number for {name}")


LOG_DIR_ENV = "AIRLINE_HPO_LOG_DIR"
DEBUG_ENV = "AIRLINE_HPO_DEBUG"
log = logging.getLogger("airline_hpo")


def log_path(prog: str) -> Path:
    """Where this run's full log goes (one file per process)."""
    configured = os.environ.get(LOG_DIR_ENV, "").strip()
    base = Path(configured) if configured else Path.home() / ".cache" / "airline-hpo" / "logs"
    return base / f"{prog}-{time.strftime('%Y%m%d-%H%M%S')}-{os.getpid()}.log"


def child_log(prog: str) -> Path:
    """A log file for a child process (the model server), beside the entry point's own log, so that an error can
    still point to it after this process has ended (a temporary directory would be gone by then). When the log
    directory is not writable: a private temporary directory that is kept, for the same reason."""
    path = log_path(prog)
    try:
        path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
        os.close(os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600))
        return path
    except OSError:
        return Path(tempfile.mkdtemp(prefix=f"{prog}-")) / path.name


class _PrivateFileHandler(logging.FileHandler):
    """A log file readable by its owner only, created on the first record (a clean run leaves no file)."""

    def _open(self):
        directory = Path(self.baseFilename).parent
        try:
            directory.mkdir(parents=True, exist_ok=True, mode=0o700)
            _prune(directory)
            os.close(os.open(self.baseFilename, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600))
        except OSError:  # no writable home (a read-only image): no log file rather than a logging traceback
            self.baseFilename = os.devnull
        return super()._open()


#: Log files kept per directory (the oldest go first).
KEEP_LOGS = 50


def _prune(directory: Path, keep: int = KEEP_LOGS) -> None:
    logs = sorted(directory.glob("*.log"), key=lambda p: p.stat().st_mtime)
    for old in logs[: max(0, len(logs) - keep + 1)]:
        old.unlink(missing_ok=True)


def setup_logging(prog: str, debug: bool) -> tuple[Path, list[logging.Handler]]:
    """Libraries' INFO and up and our own DEBUG to the log file (created on the first record, owner-only); with
    ``debug`` to stderr too. A root handler also keeps urllib3's retry warnings off the terminal. Returns the
    file's path and the handlers to remove when the entry point is done."""
    path = log_path(prog)
    handler: logging.Handler = _PrivateFileHandler(path, delay=True, encoding="utf-8")
    handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s [%(threadName)s] %(message)s"))
    handler.setLevel(logging.DEBUG)
    handlers = [handler]
    if debug:
        handlers.append(logging.StreamHandler(sys.stderr))
        handlers[-1].setLevel(logging.DEBUG)
    root = logging.getLogger()
    for each in handlers:
        root.addHandler(each)
    root.setLevel(logging.INFO)  # not DEBUG for every library: botocore's debug output is large and sensitive
    log.setLevel(logging.DEBUG)
    return path, handlers


class _ReaderGone:
    """stdout or stderr that outlives its reader. When the reader of a pipe dies first (``... | tee log`` and
    Ctrl-C, which signals the whole process group), the next write raises ``BrokenPipeError`` (errno 32). That
    is no failure of the work: the stream is pointed at ``/dev/null`` (its file descriptor too, so that the
    interpreter's last flush and child processes do not fail either) and the work goes on to mark its runs."""

    def __init__(self, stream, name: str) -> None:
        self._stream, self._name = stream, name
        self.gone = False

    def write(self, text: str) -> int:
        try:
            return self._stream.write(text)
        except BrokenPipeError:
            self._drop()
            return len(text)

    def flush(self) -> None:
        try:
            self._stream.flush()
        except BrokenPipeError:
            self._drop()

    def _drop(self) -> None:
        if not self.gone:
            self.gone = True
            with contextlib.suppress(OSError, ValueError, AttributeError):
                devnull = os.open(os.devnull, os.O_WRONLY)
                try:
                    os.dup2(devnull, self._stream.fileno())
                finally:
                    os.close(devnull)
            log.info("the reader of %s went away (broken pipe): its output is dropped from here on", self._name)
        with contextlib.suppress(OSError, ValueError):
            self._stream.flush()  # what was buffered goes to /dev/null now

    def __getattr__(self, name: str):
        return getattr(self._stream, name)


@contextlib.contextmanager
def _output_survives_its_reader():
    """sys.stdout and sys.stderr as :class:`_ReaderGone` for the entry point's duration; flushed at the end, so
    that a pipe broken while the output sat in a buffer does not fail the interpreter's exit."""
    saved = sys.stdout, sys.stderr
    sys.stdout, sys.stderr = _ReaderGone(saved[0], "stdout"), _ReaderGone(saved[1], "stderr")
    try:
        yield
    finally:
        for stream in (sys.stdout, sys.stderr):
            with contextlib.suppress(Exception):
                stream.flush()
        sys.stdout, sys.stderr = saved


def log_note(path: Path) -> str:
    """Where the full log is, for an error line: only a log that was written (an unwritable
    ``AIRLINE_HPO_LOG_DIR`` leaves none, and a line must not send the user to a file that does not exist)."""
    if path.exists():
        return f"full log: {path}"
    return f"no log file: {path.parent} is not writable (set {LOG_DIR_ENV}, or run again with --debug)"


def _debug_requested(argv: list[str]) -> bool:
    return "--debug" in argv or os.environ.get(DEBUG_ENV, "").strip().lower() in {"1", "true", "yes"}


def run_cli(
    main: Callable[[Sequence[str] | None], int], argv: Sequence[str] | None = None, prog: str | None = None
) -> int:
    """Run an entry point's ``main``; report any failure in one line on stderr and return its exit code.

    ``prog`` names the log file; by default it is the last part of ``main``'s module.
    """
    args = list(sys.argv[1:] if argv is None else argv)
    debug = _debug_requested(args)
    args = [a for a in args if a != "--debug"]
    module = getattr(main, "__module__", "trainer")
    if module == "__main__":  # `python -m airline_hpo.search`: the module's real name is in its spec
        module = getattr(getattr(sys.modules["__main__"], "__spec__", None), "name", None) or "trainer"
    prog = prog or module.rsplit(".", 1)[-1]
    with _output_survives_its_reader():
        return _report(main, args, prog, debug)


def _report(main: Callable[[Sequence[str] | None], int], args: list[str], prog: str, debug: bool) -> int:
    path, handlers = setup_logging(prog, debug)
    try:
        return main(args)
    except Stopped as exc:
        log.info("stopped: %s", exc)
        print(str(exc), file=sys.stderr, flush=True)
        return exc.exit_code
    except TrainerError as exc:
        if exc.exit_code != EXIT_USAGE:  # bad input needs no log file; failed work keeps its detail
            log.debug("error: %s", exc, exc_info=True)
        detail = f" ({log_note(path)})" if exc.exit_code != EXIT_USAGE else ""
        print(f"error: {exc}{detail}", file=sys.stderr, flush=True)
        return exc.exit_code
    except KeyboardInterrupt:
        print("error: interrupted; run the command again to start over", file=sys.stderr)
        return 130
    except Exception as exc:
        log.error("unexpected failure", exc_info=True)
        found = _chained_trainer_error(exc)
        if found is not None:
            print(f"error: {found} ({log_note(path)})", file=sys.stderr, flush=True)
            return found.exit_code
        first = (str(exc).splitlines() or [""])[0][:300]
        print(
            f"error: {type(exc).__name__}: {first}; {_traceback_note(path)}",
            file=sys.stderr,
            flush=True,
        )
        return EXIT_FAILED
    finally:
        for handler in handlers:  # an entry point called in-process (tests, the demo) leaves no handler behind
            logging.getLogger().removeHandler(handler)
            handler.close()


def _traceback_note(path: Path) -> str:
    if path.exists():
        return f"full traceback in {path} (or run again with --debug)"
    return f"run again with --debug for the traceback ({path.parent} is not writable: set {LOG_DIR_ENV})"


def _chained_trainer_error(exc: BaseException) -> TrainerError | None:
    """A :class:`TrainerError` that caused ``exc`` (e.g. MLflow failing to close a run while one was raised)."""
    return next((link for link in exception_chain(exc) if isinstance(link, TrainerError)), None)


def exception_chain(exc: BaseException | None) -> Iterator[BaseException]:
    """``exc``, then what caused it or was being handled when it was raised, and so on (each once: a chain may
    loop)."""
    seen: set[int] = set()
    while exc is not None and id(exc) not in seen:
        seen.add(id(exc))
        yield exc
        exc = exc.__cause__ or exc.__context__
