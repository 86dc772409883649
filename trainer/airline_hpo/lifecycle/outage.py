"""How long the trainer waits for the tracking server, and which part of the stack is down when it gives up.

MLflow's client retries every HTTP call on its own (``MLFLOW_HTTP_REQUEST_MAX_RETRIES`` retries, default 7, with
urllib3's backoff ``factor * 2**(n-1)`` seconds before retry n >= 2, factor ``MLFLOW_HTTP_REQUEST_BACKOFF_FACTOR``
default 2): about 4.2 minutes per call, and a search makes many calls, so a dead server meant tens of minutes of
silence. The trainer sets those knobs from ONE budget, ``--tracking-timeout`` / ``AIRLINE_HPO_TRACKING_TIMEOUT``
(seconds of outage one call survives, default 90): the retries and integer backoff factor whose summed sleeps
``factor * (2**retries - 2)`` come closest to the budget without passing it, and a per-attempt timeout
(``MLFLOW_HTTP_REQUEST_TIMEOUT``) of ``budget / (retries + 1)`` (at least 10 s), so that a server that hangs
instead of refusing costs at most about twice the budget.

When a call still fails, :func:`diagnose` asks the stack directly, once and with no retries, which part is down:
the server itself (connection refused, timeout, ``/health`` fails), its database (a read through the API answers
5xx), or the artifact store (a listing through the artifact proxy answers 5xx). The result is one line.

A full disk is named as such (:func:`full_disk`): on the local stack, whose state directory ``make env`` exports as
``LOCAL_STACK_DIR``, by the free space there (a server whose PostgreSQL cannot write hangs, so over HTTP it looks
like any unreachable server: "Read timed out"); on any server, by the storage errors in a 5xx answer
(PostgreSQL's "could not extend file ... No space left on device" and the like).
"""

from __future__ import annotations

import logging
import os
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import TypeVar

from airline_hpo.errors import EXIT_FAILED, TrainerError, exception_chain, number

T = TypeVar("T")
log = logging.getLogger(__name__)

BUDGET_ENV = "AIRLINE_HPO_TRACKING_TIMEOUT"
DEFAULT_BUDGET_SECONDS = 90.0
#: ``--tracking-timeout``'s argparse type (the same range as :func:`budget_seconds` checks in the variable).
BUDGET_TYPE = number(float, 1, 1000)
#: MLflow refuses more retries than this (``_MLFLOW_HTTP_REQUEST_MAX_RETRIES_LIMIT``).
_MAX_RETRIES = 10
#: urllib3's ``DEFAULT_BACKOFF_MAX``: no single backoff sleep is longer.
_MAX_SLEEP = 120


@dataclass(frozen=True)
class RetryPlan:
    """MLflow's client settings for one budget; ``sleep_seconds`` is the summed backoff of one failing call."""

    budget: float
    retries: int
    backoff_factor: int
    timeout: int

    @property
    def sleep_seconds(self) -> float:
        return _total_sleep(self.retries, self.backoff_factor)

    def env(self) -> dict[str, str]:
        return {
            "MLFLOW_HTTP_REQUEST_MAX_RETRIES": str(self.retries),
            "MLFLOW_HTTP_REQUEST_BACKOFF_FACTOR": str(self.backoff_factor),
            "MLFLOW_HTTP_REQUEST_BACKOFF_JITTER": "0.5",
            "MLFLOW_HTTP_REQUEST_TIMEOUT": str(self.timeout),
        }


def _total_sleep(retries: int, factor: int) -> float:
    """urllib3's summed backoff: nothing before the first retry, ``factor * 2**(n-1)`` (at most 120 s) before
    retry n."""
    return sum(min(_MAX_SLEEP, factor * 2 ** (n - 1)) for n in range(2, retries + 1))


def plan(budget: float) -> RetryPlan:
    """The retries and backoff factor whose total sleep is the largest not above ``budget`` (more retries on a
    tie: shorter gaps notice a recovery sooner)."""
    best = (0.0, 1, 1)  # (sleep, retries, factor)
    for retries in range(1, _MAX_RETRIES + 1):
        for factor in range(1, _MAX_SLEEP + 1):
            sleep = _total_sleep(retries, factor)
            if sleep > budget:
                break
            if (sleep, retries) >= best[:2]:
                best = (sleep, retries, factor)
    _sleep, retries, factor = best
    return RetryPlan(budget, retries, factor, min(120, max(10, int(budget / (retries + 1)))))


def budget_seconds(value: float | None = None) -> float:
    """The budget from the option, else ``AIRLINE_HPO_TRACKING_TIMEOUT``, else 90 s; one line when invalid."""
    if value is None:
        raw = os.environ.get(BUDGET_ENV, "").strip()
        if not raw:
            return DEFAULT_BUDGET_SECONDS
        try:
            value = float(raw)
        except ValueError:
            raise TrainerError(f"{BUDGET_ENV}={raw!r} is not a number", "set it to seconds, e.g. 90") from None
    if not 1 <= value <= 1000:
        raise TrainerError(
            f"tracking timeout must be 1 to 1000 seconds (got {value:g})",
            f"pass --tracking-timeout 90 (or {BUDGET_ENV}=90)",
        )
    return value


#: The plan in force (set by :func:`apply`), for the messages.
CURRENT: RetryPlan | None = None


def apply(budget: float) -> RetryPlan:
    """Set MLflow's retry knobs for ``budget`` in this process (MLflow reads them at every call)."""
    global CURRENT
    CURRENT = plan(budget)
    os.environ.update(CURRENT.env())
    return CURRENT


def fail_fast() -> None:
    """After the trainer has given up (or is stopping): later calls try once, briefly, instead of waiting again."""
    os.environ.update(
        {
            "MLFLOW_HTTP_REQUEST_MAX_RETRIES": "0",
            "MLFLOW_HTTP_REQUEST_BACKOFF_FACTOR": "0",
            "MLFLOW_HTTP_REQUEST_TIMEOUT": "2",
        }
    )


class TrackingDown(TrainerError):
    """A part of the stack stayed down for longer than the budget (exit 1: work was lost or is journaled)."""

    def __init__(self, problem: str, fix: str, part: str = "") -> None:
        super().__init__(problem, fix, exit_code=EXIT_FAILED)
        #: The part of the stack that is down, as a phrase (the problem without the budget and journal notes).
        self.part = part or problem


STACK_DIR_ENV = "LOCAL_STACK_DIR"
#: Below this much free space the local stack's PostgreSQL and S3 store cannot write (``local_stack/disk.py``
#: uses the same floor: PostgreSQL's WAL segments are 16 MiB).
MIN_FREE_BYTES = 64 * 2**20
#: Storage errors in a server's answer: errno 28's text, PostgreSQL's, SeaweedFS's, MySQL's.
_DISK_WORDS = ("no space left on device", "could not extend file", "disk full", "diskfull", "not enough space")


def full_disk(text: str = "") -> str | None:
    """The full disk as the part that is down, or None: the local stack's state directory with under 64 MiB free,
    or a storage error in ``text`` (a server's answer)."""
    import shutil

    directory = os.environ.get(STACK_DIR_ENV, "").strip()
    if directory:
        try:
            usage = shutil.disk_usage(directory)
        except OSError:
            usage = None
        if usage is not None and usage.free < MIN_FREE_BYTES:
            return (
                f"{_FULL_STACK_DISK} the stack's state directory {directory} is full ({usage.free // 2**20} MiB "
                f"free of {usage.total // 2**20} MiB), so its database and artifact store cannot write"
            )
    if any(word in text.lower() for word in _DISK_WORDS):
        return f"{_FULL_SERVER_DISK} ({_first_line(text)})"
    return None


_FULL_STACK_DISK = "the disk holding"
_FULL_SERVER_DISK = "the tracking server's storage is full"


def is_full_disk(part: str) -> bool:
    """Whether ``part`` (a phrase of :func:`diagnose`) is a full disk: waiting longer will not help."""
    return part.startswith((_FULL_STACK_DISK, _FULL_SERVER_DISK))


def recovery(part: str) -> str:
    """What brings ``part`` back, in a few words (the resume command follows it)."""
    if part.startswith(_FULL_STACK_DISK):
        directory = os.environ.get(STACK_DIR_ENV, "").strip()
        return f"free space under {directory} (`make status` shows the disk), then `make up`"
    if part.startswith(_FULL_SERVER_DISK):
        return "free space on the tracking server's disk (its database's or artifact store's)"
    return "bring it back (`make status`, the service's log)"


_DB_WORDS = ("psycopg", "sqlalchemy", "operationalerror", "database", "postgres", "connection to server")
_STORE_WORDS = ("s3", "boto", "bucket", "endpoint url", "artifact")


def _first_line(text: str, limit: int = 160) -> str:
    """The first line of an error text; of its ``message`` when it is MLflow's JSON error body."""
    try:
        import json

        text = str(json.loads(text).get("message", text))
    except (ValueError, AttributeError):
        pass
    line = next((part.strip() for part in text.splitlines() if part.strip()), "")
    return line[:limit]


def _get(url: str, headers: dict[str, str], timeout: float):
    import requests

    return requests.get(url, headers=headers, timeout=timeout)


def _auth_headers(uri: str) -> dict[str, str]:
    """The Authorization header MLflow's client would send (basic auth or a token), for the direct probes."""
    import base64

    from mlflow.utils.databricks_utils import is_databricks_default_tracking_uri

    if is_databricks_default_tracking_uri(uri):
        return {}
    from mlflow.tracking._tracking_service.utils import get_default_host_creds

    creds = get_default_host_creds(uri)
    if creds.username and creds.password:
        pair = base64.b64encode(f"{creds.username}:{creds.password}".encode()).decode()
        return {"Authorization": f"Basic {pair}"}
    if creds.token:
        return {"Authorization": f"Bearer {creds.token}"}
    return {}


def diagnose(uri: str, timeout: float = 5.0) -> str | None:
    """Which part of the stack behind ``uri`` is down, as a phrase; None when all three answer now.

    One request each, no retries: ``/health`` (the server), a one-row experiment search (the database), an
    artifact listing through the proxy (the artifact store; a server without the proxy answers 404: not down).
    """
    import requests

    disk = full_disk()
    if disk or not uri.startswith(("http://", "https://")):
        return disk  # asked first: with its disk full the server hangs, and any probe below would only time out
    base = uri.rstrip("/")
    headers = _auth_headers(uri)
    try:
        health = _get(f"{base}/health", headers, timeout)
    except requests.ConnectionError as exc:
        reason = "connection refused" if "refused" in str(exc).lower() else type(exc).__name__
        return f"cannot reach the MLflow tracking server at {uri} ({reason})"
    except requests.Timeout:
        return f"cannot reach the MLflow tracking server at {uri} (no reply within {timeout:g} s)"
    if health.status_code != 200:
        return f"the MLflow tracking server at {uri} answers /health with HTTP {health.status_code}"
    try:
        found = _get(f"{base}/api/2.0/mlflow/experiments/search?max_results=1", headers, 2 * timeout)
    except requests.Timeout:
        # /health answered, a read through the database did not: the server waits on its database
        return (
            f"the tracking server's database is not answering (the server at {uri} answers /health, but a "
            f"one-row read took over {2 * timeout:g} s)"
        )
    except requests.RequestException as exc:
        return f"the MLflow tracking server at {uri} fails API calls ({type(exc).__name__})"
    if found.status_code >= 500:
        text = found.text
        if full_disk(text):
            return full_disk(text)
        if any(word in text.lower() for word in _DB_WORDS):
            return f"the tracking server's database is down (HTTP {found.status_code}: {_first_line(text)})"
        return f"the MLflow tracking server at {uri} fails API calls (HTTP {found.status_code}: {_first_line(text)})"
    try:
        listed = _get(f"{base}/api/2.0/mlflow-artifacts/artifacts?path=", headers, timeout)
    except requests.RequestException as exc:
        return f"the artifact proxy of {uri} is not answering ({type(exc).__name__})"
    if listed.status_code >= 500:
        if full_disk(listed.text):
            return full_disk(listed.text)
        return f"the artifact store behind {uri} is down (HTTP {listed.status_code}: {_first_line(listed.text)})"
    return None


def down_error(uri: str, exc: BaseException, journal_note: str = "", part: str | None = None) -> TrackingDown:
    """The one-line error after the budget ran out: the part that is down (``part``, else asked now), else the
    client's error."""
    part = part or (exc.part if isinstance(exc, TrackingDown) else None)
    part = part or (diagnose(uri) if uri.startswith(("http://", "https://")) else None)
    if part is None:
        message = getattr(exc, "message", None) or str(exc) or type(exc).__name__
        part = full_disk(message) or f"the tracking server at {uri} failed a call ({_first_line(message)})"
    budget = CURRENT.budget if CURRENT else DEFAULT_BUDGET_SECONDS
    return TrackingDown(
        f"{part}; gave up after the {budget:g} s retry budget{journal_note}",
        f"{recovery(part)}, then resume the search",
        part,
    )


def is_outage(exc: BaseException) -> bool:
    """A failure to reach the stack (after MLflow's own retries), as opposed to a refusal of what was sent:
    connection errors and timeouts, exhausted retries, 5xx answers; also when one of these caused ``exc``.
    A bare ``BrokenPipeError`` is not one: the HTTP client wraps its socket's errors in its own exceptions
    (met first in the chain), so a bare one is a write to our output whose reader went away."""
    import requests
    from mlflow.exceptions import MlflowException, RestException

    for link in exception_chain(exc):
        if isinstance(link, BrokenPipeError):  # our own stdout/stderr whose reader died (`| tee`, Ctrl-C)
            return False
        if isinstance(link, requests.RequestException | ConnectionError | TimeoutError):
            return True
        if isinstance(link, RestException):
            if link.get_http_status_code() >= 500:
                return True
        elif isinstance(link, MlflowException):
            text = str(link).lower()
            if any(m in text for m in ("max retries exceeded", "failed with exception", "connection refused")):
                return True
    return False


def is_glitch(exc: BaseException) -> bool:
    """A failure worth one more try, as opposed to an outage (which MLflow's own retries already waited out for
    the whole budget): the telemetry race of MLflow 3.17 (``KeyError: '_MLFLOW_TELEMETRY_SESSION_ID'``, seen once
    in 3,200 calls under load), a 429/5xx that reached the caller as a
    :class:`~mlflow.exceptions.RestException` instead of being retried, and an answer cut off mid-body.

    The last one is what a server killed while it answers leaves: the headers came, the body stops short
    (``IncompleteRead``). urllib3's ``Retry`` covers a request up to the answer's headers; the body is read after
    it, so the error reaches MLflow's client unretried, at once, and would end the search without any wait. One
    more call goes through MLflow's retries again, which wait for the server for the whole budget. MLflow's own
    retries already resend a POST whose answer never came, so this adds no new kind of repeat."""
    from mlflow.exceptions import RestException

    if isinstance(exc, KeyError) and "TELEMETRY" in str(exc).upper():
        return True
    if isinstance(exc, RestException):
        status = exc.get_http_status_code()
        return status == 429 or status >= 500
    return _cut_off_mid_answer(exc)


def _cut_off_mid_answer(exc: BaseException | None) -> bool:
    """``exc`` or its cause is a body that ended short: requests' ``ChunkedEncodingError`` (raised for any broken
    read of the body, chunked or not) or urllib3's ``ProtocolError``; MLflow's client wraps either in an
    ``MlflowException`` raised while handling it."""
    import requests
    import urllib3

    broken = requests.exceptions.ChunkedEncodingError | urllib3.exceptions.ProtocolError
    return any(isinstance(link, broken) for link in exception_chain(exc))


def retry_glitches(fn: Callable[[], T], attempts: int = 3, pause: float = 0.5) -> T:
    """Call ``fn``; retry it (at most ``attempts`` calls in all) when it fails with :func:`is_glitch`."""
    for attempt in range(1, attempts + 1):
        try:
            return fn()
        except Exception as exc:
            if attempt == attempts or not is_glitch(exc):
                raise
            log.debug("retrying after a client glitch (attempt %d): %r", attempt, exc)
            time.sleep(pause * attempt)
    raise AssertionError("unreachable")
