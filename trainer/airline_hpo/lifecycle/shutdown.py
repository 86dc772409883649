"""A search that ends in a known state: on SIGTERM/SIGINT, and when the tracking server stays down.

SIGTERM is what Kubernetes sends on eviction or ``kubectl delete``, then SIGKILL after the grace period (30 s
by default). Before, SIGTERM killed the driver on the spot and left the parent and the running trial RUNNING
forever. Now, once :func:`install` has run (the ``hyperopt`` entry point does it):

- the first SIGTERM/SIGINT only *asks* to stop: the running trial goes on, no new trial starts
  (:func:`check` in the objective raises :class:`StopRequested` into hyperopt's ``fmin``), pending trial writes
  are flushed, the parent gets ``stop_reason=signal SIGTERM`` and status KILLED, one line says how many trials
  ran and how to resume, and the exit status is 143 (SIGTERM) or 130 (SIGINT), as a shell reports them;
- a watchdog thread learns of the signal at once, even while the main thread is inside a long fit (through
  :func:`signal.set_wakeup_fd`, written by the C-level handler); if the orderly stop has not ended within the
  grace budget (``AIRLINE_HPO_STOP_GRACE``, default 20 s: the Job's 30 s minus time for the last calls), or on
  a second signal, it marks the running trial and the parent KILLED itself, with one try each and short
  timeouts, prints the same line and exits.

:func:`guard` wraps the parent run's body in the search. Besides the stop above, it turns a tracking outage that
outlived the retry budget (:mod:`airline_hpo.lifecycle.outage`) into one line naming the part that is down and the
journal that keeps the finished trials (:mod:`airline_hpo.lifecycle.journal`), without waiting out the budget again to
close a parent the server cannot reach.
"""

from __future__ import annotations

import contextlib
import math
import os
import signal
import sys
import threading
import time
from collections.abc import Iterator
from concurrent.futures import Future
from dataclasses import dataclass
from typing import Any

from airline_hpo.errors import Stopped
from airline_hpo.lifecycle import outage
from airline_hpo.lifecycle.journal import STOP_REASON_TAG, Journal

GRACE_ENV = "AIRLINE_HPO_STOP_GRACE"
DEFAULT_GRACE_SECONDS = 20.0
#: Exit statuses as a shell reports a death by these signals (128 + signal number).
EXIT_CODES = {signal.SIGTERM: 143, signal.SIGINT: 130}


class StopRequested(Exception):
    """Raised in the objective when a stop was asked for: hyperopt's ``fmin`` starts no further trial."""


@dataclass
class SearchState:
    """What is in flight, for whoever has to close it: the guard, or the watchdog after the grace budget."""

    parent_run_id: str | None = None
    experiment_id: str | None = None
    max_evals: int = 0
    trials_done: int = 0
    #: The running trial's run id (or the pending creation of it); None between trials.
    current_trial: str | Future | None = None
    journal: Journal | None = None
    runner: Any = None
    #: The guarded part is over (the parent run is closed): a late signal has nothing left to mark.
    finished: bool = False

    def trial_started(self, run_ref: str | Future) -> None:
        self.current_trial = run_ref

    def trial_ended(self) -> None:
        self.current_trial = None
        self.trials_done += 1


STATE = SearchState()

_lock = threading.Lock()
_requested: signal.Signals | None = None
_requested_at = 0.0
_closed = False
_installed = False


def requested() -> signal.Signals | None:
    return _requested


def check() -> None:
    """Call before starting a trial: raises :class:`StopRequested` once a stop was asked for."""
    if _requested is not None:
        raise StopRequested(_requested.name)


def grace_seconds() -> float:
    raw = os.environ.get(GRACE_ENV, "").strip()
    try:
        value = float(raw) if raw else DEFAULT_GRACE_SECONDS
    except ValueError:
        return DEFAULT_GRACE_SECONDS
    return max(1.0, value) if math.isfinite(value) else DEFAULT_GRACE_SECONDS  # inf would never cut a hung trial


def note(sig: signal.Signals) -> bool:
    """Record a signal; True for the first one."""
    global _requested, _requested_at
    with _lock:
        first = _requested is None
        if first:
            _requested, _requested_at = sig, time.monotonic()
        return first


def _on_signal(signum: int, _frame: Any) -> None:
    note(signal.Signals(signum))  # the watchdog (woken through the wakeup fd) keeps the time


def _watch(read_fd: int) -> None:
    """Daemon thread: wait for signal bytes; give the orderly stop its grace, else close everything here. It counts
    signals itself: the main thread's handler may or may not have run yet when a byte arrives."""
    seen = 0
    while True:
        try:
            data = os.read(read_fd, 1)
        except OSError:
            return
        if not data:
            return
        sig = signal.Signals(data[0])
        if sig not in EXIT_CODES or _closed:
            continue
        note(sig)
        seen += 1
        if seen == 1:
            threading.Thread(target=_deadline, args=(sig,), name="stop-deadline", daemon=True).start()
        else:
            emergency(_requested or sig, "a second signal")


def _deadline(sig: signal.Signals) -> None:
    time.sleep(grace_seconds())
    if not _closed:
        emergency(sig, f"the {grace_seconds():g} s grace budget ran out")


def install() -> None:
    """Take over SIGTERM and SIGINT for the search (call once, from the main thread, before the search)."""
    global _installed
    if _installed:
        return
    read_fd, write_fd = os.pipe()
    os.set_blocking(write_fd, False)
    signal.set_wakeup_fd(write_fd, warn_on_full_buffer=False)
    for sig in EXIT_CODES:
        signal.signal(sig, _on_signal)
    threading.Thread(target=_watch, args=(read_fd,), name="stop-watch", daemon=True).start()
    _installed = True


def reclaim() -> None:
    """Take SIGTERM and SIGINT back after a library took them (once :func:`install` has run). ``ray.init`` sets
    a SIGTERM handler that exits at once (``sys.exit``: the parent ended FAILED, exit status 1) and its C++ core
    installs a failure handler that dumps a stack trace on SIGTERM; Ray Tune replaces SIGINT during ``fit``
    unless ``TUNE_DISABLE_SIGINT_HANDLER=1``. Setting a Python handler again replaces both C-level handlers."""
    if not _installed:
        return
    os.environ["TUNE_DISABLE_SIGINT_HANDLER"] = "1"
    for sig in EXIT_CODES:
        signal.signal(sig, _on_signal)


def installed() -> bool:
    return _installed


def close() -> None:
    """The entry point has reported its outcome: the watchdog must not act any more."""
    global _closed
    with _lock:
        _closed = True


def closing(exit_code: int) -> int:
    """:func:`close` once the entry point's CLI wrapper has reported; returns ``exit_code`` for ``sys.exit``."""
    close()
    return exit_code


def stop_line(sig: signal.Signals) -> str:
    if STATE.finished:
        return f"stopped by {sig.name} after the search had finished (its runs are complete)"
    if not STATE.max_evals and STATE.parent_run_id:  # one run, no trials (entry point train)
        return f"stopped by {sig.name}; run {STATE.parent_run_id} marked KILLED, run the entry point again"
    done = f"after {STATE.trials_done} of {STATE.max_evals} trials" if STATE.max_evals else "before the search"
    if STATE.parent_run_id is None:
        return f"stopped by {sig.name} {done}; nothing was recorded, run the search again"
    return f"stopped by {sig.name} {done}; resume with -P resume_run_id={STATE.parent_run_id}"


def _now_ms() -> int:
    return int(time.time() * 1000)


def _current_trial_id() -> str | None:
    ref = STATE.current_trial
    if isinstance(ref, Future):
        return ref.result() if ref.done() and ref.exception() is None else None
    return ref


def emergency(sig: signal.Signals, why: str) -> None:
    """Mark the running trial and the parent KILLED (one short try each), print the line, exit now."""
    global _closed
    with _lock:
        if _closed:
            return
        _closed = True
    outage.fail_fast()
    reason = f"signal {sig.name}"
    with contextlib.suppress(Exception):
        from mlflow import MlflowClient

        client = MlflowClient()
        trial = _current_trial_id()
        if trial:
            with contextlib.suppress(Exception):
                client.set_tag(trial, STOP_REASON_TAG, f"{reason}: cut short ({why})")
                client.set_terminated(trial, "KILLED", end_time=_now_ms())
        if STATE.journal is not None:
            STATE.journal.parent("KILLED", reason, _now_ms())
        if STATE.parent_run_id:
            client.set_tag(STATE.parent_run_id, STOP_REASON_TAG, reason)
            client.set_terminated(STATE.parent_run_id, "KILLED", end_time=_now_ms())
    # on a line of its own: the progress bar's line is still open
    cut = "the running trial" if STATE.max_evals else "the work in progress"
    with contextlib.suppress(OSError, ValueError):  # a reader that is gone must not keep this process alive
        print(f"\n{stop_line(sig)} ({why}: {cut} was cut short)", file=sys.stderr, flush=True)
    os._exit(EXIT_CODES[sig])


def _pop_active_run(run_id: str) -> None:
    """Forget the active parent run without telling the server (which is down): ``start_run``'s exit would
    otherwise try to mark it FAILED and wait out the retry budget once more."""
    from mlflow.environment_variables import MLFLOW_RUN_ID
    from mlflow.tracking import fluent

    stack = fluent._active_run_stack.get()
    if stack and stack[-1].info.run_id == run_id:
        stack.pop()
        MLFLOW_RUN_ID.unset()


def _stop_gracefully(sig: signal.Signals) -> Stopped:
    import mlflow

    deadline = _requested_at + grace_seconds()
    line = stop_line(sig)
    try:
        if STATE.runner is not None:
            try:
                STATE.runner.flush(timeout=max(1.0, deadline - time.monotonic()))
            except TypeError:  # a runner whose flush takes no timeout: the watchdog still bounds the wait
                STATE.runner.flush()
        outage.fail_fast()  # the Job's grace period is short: one quick try for the last two calls
        mlflow.set_tag(STOP_REASON_TAG, f"signal {sig.name}")
        mlflow.end_run("KILLED")
        if STATE.journal is not None:
            STATE.journal.discard()
    except Exception:
        if STATE.journal is not None:
            STATE.journal.parent("KILLED", f"signal {sig.name}", _now_ms())
            line += f" (some records could not be written: kept in {STATE.journal.path})"
        if STATE.parent_run_id:
            _pop_active_run(STATE.parent_run_id)
    return Stopped(line, EXIT_CODES[sig])


def gave_up(exc: BaseException) -> outage.TrackingDown:
    """The one line for an outage past the budget; the parent's fate goes to the journal for replay."""
    import mlflow

    outage.fail_fast()
    uri = mlflow.get_tracking_uri()
    found = getattr(exc, "part", None) or outage.diagnose(uri)
    part = found or "the tracking server"
    note, fix = "", f"{outage.recovery(part)}, then run the entry point again"
    if STATE.journal is not None and STATE.parent_run_id:
        STATE.journal.parent("FAILED", f"tracking outage: {part}", _now_ms())
        kept = STATE.journal.trials
        note = f"; {kept} finished trial(s) kept in {STATE.journal.path}" if kept else "; every trial is in MLflow"
        fix = (
            f"{outage.recovery(part)}, then resume with -P resume_run_id={STATE.parent_run_id} "
            "(the journal is replayed first)"
        )
        _pop_active_run(STATE.parent_run_id)
    error = outage.down_error(uri, exc, note, found)
    error.fix = fix
    return error


@contextlib.contextmanager
def guard(max_evals: int, runner: Any = None) -> Iterator[SearchState]:
    """Wrap the active parent run's body: a stop request or an outage past the budget ends it as described in
    the module docstring. The runner may also be set later (``STATE.runner``). ``max_evals=0``: one run without
    trials (entry point ``train``): a signal lets it finish within the grace budget, else marks it KILLED."""
    import mlflow

    run = mlflow.active_run()
    STATE.parent_run_id = run.info.run_id if run else None
    STATE.experiment_id = run.info.experiment_id if run else None
    STATE.max_evals, STATE.trials_done, STATE.current_trial, STATE.runner = max_evals, 0, None, runner
    STATE.finished = False
    STATE.journal = Journal(STATE.parent_run_id, STATE.experiment_id) if run and max_evals else None
    try:
        check()
        yield STATE
    except StopRequested:
        raise _stop_gracefully(_requested or signal.SIGTERM) from None
    except Exception as exc:
        if isinstance(exc, outage.TrackingDown) or outage.is_outage(exc):
            raise gave_up(exc) from exc
        raise
    finally:
        # the parent is closed (or given up) by whoever handles the exit: nothing left for the watchdog to mark
        STATE.finished, STATE.parent_run_id, STATE.current_trial, STATE.runner = True, None, None, None
