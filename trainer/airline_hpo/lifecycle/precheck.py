"""What the search needs from the stack, checked before the first run is created.

``/health`` answers without touching the database or the bucket, so a server whose PostgreSQL or S3 store is
down passed the old check and the search failed minutes later, after the client's retries. Here, in order:

1. the registered model name, by MLflow's own rules (``mlflow.utils.validation._validate_model_name``: no ``/``
   or ``:``, no path tricks) and the registry's column length (256), so ``team/airline`` fails now, not after
   the whole search with an uploaded, unregistered model;
2. the tracking URI: unset means MLflow would silently write to ``./mlruns`` or ``./mlflow.db`` and "register"
   the model there; the trainer refuses unless a local store is named explicitly (``sqlite:``, or ``file:``
   with ``MLFLOW_ALLOW_FILE_STORE=true``, without which MLflow 3.17 refuses a file store anyway);
3. the server (``/health``), its database (a one-row experiment search through the API), and the artifact store
   (a small file written, read back and deleted under the experiment's artifact location, through the artifact
   proxy when the server has one). Each failure is one line naming the part that is down.
"""

from __future__ import annotations

import contextlib
import os
import tempfile
import uuid
from collections.abc import Iterator
from pathlib import Path

from airline_hpo.errors import NO_MODEL, TrainerError
from airline_hpo.lifecycle import outage

#: ``registered_models.name`` is ``String(256)`` in MLflow's registry schema.
MAX_MODEL_NAME_LENGTH = 256
LOCAL_SCHEMES = ("file:", "sqlite:")
_STACK_FIX = "start it (`make up`), or fix it (`make status` says which service is down), then run again"


def check_model_name(name: str) -> str:
    """Raise one line unless MLflow's registry would accept ``name`` ('' = register nothing)."""
    if name in ("", NO_MODEL):
        return name
    from mlflow.exceptions import MlflowException
    from mlflow.utils.validation import _validate_model_name

    fix = "pass a name without '/' or ':' of at most 256 characters, e.g. model_name=airline-delay"
    try:
        _validate_model_name(name)
    except MlflowException as exc:
        raise TrainerError(f"invalid model_name: {exc.message.splitlines()[0][:200]}", fix) from None
    if len(name) > MAX_MODEL_NAME_LENGTH:
        raise TrainerError(f"model_name is {len(name)} characters long (the registry keeps at most 256)", fix)
    return name


def check_tracking_uri() -> str:
    """The tracking URI the user chose; one line when none is set (no silent ``./mlruns`` fallback)."""
    uri = os.environ.get("MLFLOW_TRACKING_URI", "").strip()
    if not uri:
        raise TrainerError(
            "MLFLOW_TRACKING_URI is not set, so MLflow would write runs and models to a local ./mlruns or "
            "./mlflow.db that nobody else sees",
            'run `eval "$(make env)"` for the local stack or set MLFLOW_TRACKING_URI=http://<server>; '
            "for a local store on purpose set MLFLOW_TRACKING_URI=sqlite:////some/dir/mlflow.db",
        )
    if not uri.startswith(("http://", "https://", *LOCAL_SCHEMES)):
        raise TrainerError(
            f"MLFLOW_TRACKING_URI={uri} is neither an http(s) server nor a local file:/sqlite: store",
            "set it to http://<server>:<port> (or sqlite:////some/dir/mlflow.db for a local store on purpose)",
        )
    if uri.startswith(("http://", "https://")):
        check_server_uri(uri)
    if uri.startswith("file:") and os.environ.get("MLFLOW_ALLOW_FILE_STORE", "").lower() not in {"1", "true"}:
        raise TrainerError(
            f"MLFLOW_TRACKING_URI={uri} is a file store, which MLflow 3.17 refuses (maintenance mode)",
            "use sqlite:////some/dir/mlflow.db instead, or set MLFLOW_ALLOW_FILE_STORE=true as well",
        )
    return uri


def check_server_uri(uri: str) -> None:
    """An http(s) tracking URI must be a URL: a host, a port that is a number, no spaces (``http://not a uri``
    reached the HTTP client, whose ``InvalidURL`` named nothing)."""
    from urllib.parse import urlsplit

    fix = "set MLFLOW_TRACKING_URI to http://<host>:<port> (`make env` prints the local stack's)"
    try:
        parts = urlsplit(uri)
        port = parts.port
    except ValueError as exc:
        raise TrainerError(f"MLFLOW_TRACKING_URI={uri} is not a valid URL ({exc})", fix) from None
    if any(c.isspace() for c in uri) or not parts.hostname:
        raise TrainerError(f"MLFLOW_TRACKING_URI={uri!r} is not a valid URL (a host without spaces needed)", fix)
    if port == 0:
        raise TrainerError(f"MLFLOW_TRACKING_URI={uri} names port 0", fix)


@contextlib.contextmanager
def quick_calls() -> Iterator[None]:
    """MLflow calls inside retry once with a short timeout (a pre-check must not wait out the whole budget)."""
    names = (
        "MLFLOW_HTTP_REQUEST_MAX_RETRIES",
        "MLFLOW_HTTP_REQUEST_BACKOFF_FACTOR",
        "MLFLOW_HTTP_REQUEST_TIMEOUT",
        "MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR",  # the probe's download would draw a progress bar
    )
    saved = {name: os.environ.get(name) for name in names}
    os.environ.update(dict(zip(names, ("1", "0", "10", "false"), strict=True)))
    try:
        yield
    finally:
        for name, value in saved.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value


def _first_line(exc: BaseException) -> str:
    text = getattr(exc, "message", None) or str(exc) or type(exc).__name__
    return text.splitlines()[0][:200]


def _stack_fix(part: str) -> str:
    return f"{outage.recovery(part)}, then run again" if outage.is_full_disk(part) else _STACK_FIX


def _down(uri: str, what: str, exc: BaseException) -> TrainerError:
    part = outage.diagnose(uri) or f"{what} failed ({_first_line(exc)})"
    return TrainerError(part, _stack_fix(part))


def check_artifact_store(artifact_root: str, uri: str) -> None:
    """Write, read back and delete a small file under ``artifact_root`` (the experiment's artifact location)."""
    from mlflow.store.artifact.artifact_repository_registry import get_artifact_repository

    probe = f"_airline_hpo_precheck/{uuid.uuid4().hex}"
    body = f"airline-hpo pre-check {probe}\n"
    repo = get_artifact_repository(artifact_root)
    with tempfile.TemporaryDirectory() as tmp:
        local = Path(tmp) / "probe.txt"
        local.write_text(body)
        try:
            repo.log_artifact(str(local), probe)
            (Path(tmp) / "back").mkdir()
            back = Path(repo.download_artifacts(f"{probe}/probe.txt", dst_path=str(Path(tmp) / "back")))
            if back.read_text() != body:
                raise TrainerError(
                    f"the artifact store behind {uri} returned other bytes than were written ({artifact_root})",
                    "check the artifact store (bucket, proxy) and the server's log",
                )
        except TrainerError:
            raise
        except Exception as exc:
            raise TrainerError(
                f"the artifact store behind {uri} failed a write and read at {artifact_root} "
                f"({(outage.diagnose(uri) or _first_line(exc))})",
                _STACK_FIX,
            ) from None
    with contextlib.suppress(Exception):  # deleting needs MANAGE on a shared experiment: a leftover is harmless
        repo.delete_artifacts(probe)


def check_stack(uri: str) -> None:
    """The server, its database and its artifact store, each touched once (see the module docstring)."""
    if uri.startswith(LOCAL_SCHEMES):
        return
    import mlflow
    from mlflow import MlflowClient

    part = outage.diagnose(uri)
    if part:
        raise TrainerError(part, _stack_fix(part))
    with quick_calls():
        try:
            MlflowClient().search_experiments(max_results=1)
        except Exception as exc:
            raise _down(uri, "reading experiments (the tracking database)", exc) from None
        try:
            run_id = os.environ.get("MLFLOW_RUN_ID")
            if run_id:  # under `mlflow run` the search continues this run: probe where its artifacts go
                root = MlflowClient().get_run(run_id).info.artifact_uri
            else:
                from mlflow.tracking.fluent import _get_experiment_id

                root = mlflow.get_experiment(_get_experiment_id()).artifact_location
        except Exception as exc:
            raise _down(uri, "finding the experiment", exc) from None
        check_artifact_store(root, uri)


def check_journal_dir() -> Path:
    """The trial journal's directory must be writable, or finished trials could not be kept through an outage."""
    from airline_hpo.lifecycle.journal import JOURNAL_DIR_ENV, journal_dir

    directory = journal_dir()
    try:
        directory.mkdir(parents=True, exist_ok=True, mode=0o700)
        with tempfile.NamedTemporaryFile(dir=directory):
            pass
    except OSError as exc:
        raise TrainerError(
            f"the trial journal's directory {directory} is not writable ({exc.strerror or type(exc).__name__})",
            f"set {JOURNAL_DIR_ENV} to a writable directory",
        ) from None
    return directory


def run(model_name: str) -> str:
    """Every pre-check, cheapest first; returns the tracking URI."""
    check_model_name(model_name)
    check_journal_dir()
    uri = check_tracking_uri()
    check_stack(uri)
    return uri
