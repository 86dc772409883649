"""MLflow's scoring server as a child process group: start it, wait for ``/ping``, ask it, always stop it.

The ``serve_check`` entry point uses one for a few seconds, and the local endpoint (``make serve``) keeps one per
served version behind its proxy; each listens on a Unix socket in a directory only its user may enter: MLflow's
own scoring app (``mlflow.pyfunc.scoring_server.app``, what ``mlflow models serve`` runs) started by uvicorn with
``--uds``, because ``mlflow models serve`` only binds TCP ports, which any local user could call without a key.
MLflow execs ``uvicorn`` by name, so this interpreter's scripts go first on
PATH (a venv need not be active).
"""

from __future__ import annotations

import http.client
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path

import numpy as np
import orjson
import pandas as pd
import requests

from airline_hpo.errors import EXIT_FAILED, TrainerError

#: The headers of every body :func:`invocation` builds.
JSON_HEADERS = {"Content-Type": "application/json"}


def free_port(host: str = "127.0.0.1") -> int:
    with socket.socket() as sock:
        sock.bind((host, 0))
        return sock.getsockname()[1]


def server_command(model_uri: str, host: str, port: int, python: str = sys.executable) -> list[str]:
    """MLflow's scoring server for ``model_uri`` in this environment (``--env-manager local``: no new venv)."""
    serve = ["models", "serve", "-m", model_uri, "--env-manager", "local"]
    return [python, "-m", "mlflow", *serve, "-h", host, "-p", str(port)]


def socket_server_command(model_uri: str, socket_path: Path, python: str = sys.executable) -> list[str]:
    """MLflow's scoring app on a Unix socket: the command ``mlflow models serve`` builds
    (``mlflow.pyfunc.scoring_server.get_cmd``), with ``--uds`` for its host and port."""
    return [python, "-m", "uvicorn", "--uds", str(socket_path), "mlflow.pyfunc.scoring_server.app:app"]


@contextmanager
def private_socket_dir() -> Iterator[Path]:
    """A directory only this user may enter, for model servers' sockets, removed afterwards (``mkdtemp``: mode
    0700 from the start, and a short path, since a Unix socket's path is limited to 107 bytes)."""
    path = Path(tempfile.mkdtemp(prefix="airline-serve-"))
    try:
        yield path
    finally:
        shutil.rmtree(path, ignore_errors=True)


class UnixHTTPConnection(http.client.HTTPConnection):
    """``http.client`` over a Unix socket (the standard library has none): the host name is only the Host header."""

    def __init__(self, socket_path: str, timeout: float) -> None:
        super().__init__("localhost", timeout=timeout)
        self.socket_path = socket_path

    def connect(self) -> None:
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        sock.settimeout(self.timeout)
        try:
            sock.connect(self.socket_path)
        except OSError:
            sock.close()
            raise
        self.sock = sock


def connection(address: str, timeout: float) -> http.client.HTTPConnection:
    """A connection to a model server's ``address``: ``unix:<path>`` or ``http://host:port``."""
    if address.startswith("unix:"):
        return UnixHTTPConnection(address.removeprefix("unix:"), timeout)
    host, _, port = address.removeprefix("http://").partition(":")
    return http.client.HTTPConnection(host, int(port), timeout=timeout)


def ping(address: str, timeout: float = 2.0) -> bool:
    """True when the model server at ``address`` answers ``/ping`` with 200 (its model is loaded)."""
    conn = connection(address, timeout)
    try:
        conn.request("GET", "/ping")
        return conn.getresponse().status == 200
    except (OSError, http.client.HTTPException):
        return False
    finally:
        conn.close()


def server_env(base: Mapping[str, str] | None = None) -> dict[str, str]:
    base = dict(os.environ if base is None else base)
    return {**base, "PATH": os.pathsep.join([str(Path(sys.executable).parent), base.get("PATH", "")])}


class ModelServer:
    """MLflow's scoring server as a child process group, started and always stopped by ``with``: on
    ``host:port``, or on ``socket_path`` (a Unix socket; then ``url`` is ``unix:<path>``)."""

    def __init__(self, model_uri: str, host: str, port: int, log_path: Path, socket_path: Path | None = None) -> None:
        self.model_uri, self.host, self.port, self.log_path = model_uri, host, port, log_path
        self.socket_path = socket_path
        self.url = f"unix:{socket_path}" if socket_path else f"http://{host}:{port}"
        self.process: subprocess.Popen | None = None
        #: The server's TMPDIR, removed by ``stop``: MLflow downloads the model into a temporary directory
        #: (``tempfile.mkdtemp``) and never removes it, so every start left a copy of the model in /tmp.
        self.scratch: Path | None = None

    def __enter__(self) -> ModelServer:
        return self.start()

    def start(self, env: Mapping[str, str] | None = None) -> ModelServer:
        if self.socket_path:
            from mlflow.pyfunc import scoring_server

            command = socket_server_command(self.model_uri, self.socket_path)
            # What `mlflow models serve` tells its app: the model to load (a models:/ URI loads through the
            # tracking server's artifact proxy); the request timeout keeps MLflow's default.
            extra = {scoring_server._SERVER_MODEL_PATH: self.model_uri}
        else:
            command, extra = server_command(self.model_uri, self.host, self.port), {}
        self.scratch = Path(tempfile.mkdtemp(prefix="airline-model-"))
        with open(self.log_path, "ab") as log:
            self.process = subprocess.Popen(
                command,
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                env={**server_env(env), **extra, "TMPDIR": str(self.scratch)},
                start_new_session=True,
            )
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def log_tail(self, lines: int = 5) -> str:
        text = self.log_path.read_text(errors="replace").strip().splitlines()
        return " | ".join(text[-lines:])

    def wait_ready(self, timeout: float) -> None:
        """Return once ``/ping`` answers 200 (the model is loaded); a one-line error if it exits or times out."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise TrainerError(
                    f"the model server exited with status {self.process.returncode}: {self.log_tail()}",
                    f"read {self.log_path} and check that the model loads",
                    exit_code=EXIT_FAILED,
                )
            if ping(self.url):
                return
            time.sleep(0.5)
        raise TrainerError(
            f"the model server did not answer /ping within {timeout:.0f}s",
            f"read {self.log_path}; raise --timeout on a slow machine",
            exit_code=EXIT_FAILED,
        )

    def predict(self, flights: pd.DataFrame, output: str = "both") -> list:
        if not self.socket_path:
            return predict(self.url, flights, output)
        conn = connection(self.url, timeout=60)
        try:
            conn.request("POST", "/invocations", body=invocation(flights, output), headers=JSON_HEADERS)
            response = conn.getresponse()
            return _answer(response.status, response.read())
        finally:
            conn.close()

    def stop(self) -> None:
        try:
            if self.process is not None and self.process.poll() is None:
                os.killpg(self.process.pid, signal.SIGTERM)
                try:
                    self.process.wait(timeout=15)
                except subprocess.TimeoutExpired:
                    os.killpg(self.process.pid, signal.SIGKILL)
                    self.process.wait(timeout=5)
        finally:
            if self.scratch is not None:
                shutil.rmtree(self.scratch, ignore_errors=True)
                self.scratch = None


def invocation(flights: pd.DataFrame, output: str = "both") -> bytes:
    """The JSON body a client POSTs to ``/invocations`` for ``flights``, shaped for speed (docs/serving.md).

    ``dataframe_split`` (the JSON format MLflow's scoring server parses fastest here; ``params`` need JSON), the
    numbers written by orjson straight from one C-ordered numpy array: about 2 ms for 10,000 rows where
    ``tolist`` and the standard library's encoder (what ``requests``' ``json=`` uses) take about 15 ms. A missing
    value (NaN) goes as JSON's ``null``, which MLflow reads back as NaN; an infinite one has no JSON spelling
    (orjson would write it as ``null`` too), so it is refused rather than silently changed. For ``both``,
    ``orient=columns``: the answer comes back as two lists, which MLflow writes about four times faster than one
    JSON object per row."""
    params = {"output": output, "orient": "columns"} if output == "both" else {"output": output}
    if all(pd.api.types.is_numeric_dtype(dtype) for dtype in flights.dtypes):
        values = np.ascontiguousarray(flights.to_numpy())  # orjson writes C-ordered arrays only
        if values.dtype.kind == "f" and np.isinf(values).any():
            raise TrainerError(
                "the flights hold an infinite value, which JSON cannot carry",
                "send a finite number, or leave the value missing (NaN goes as null)",
            )
        split = {"columns": [str(c) for c in flights.columns], "data": values}
    else:  # text or timestamps: pandas boxes them; orjson writes text, timestamps as ISO 8601 (what MLflow parses)
        split = flights.to_dict(orient="split", index=False)
    body = {"dataframe_split": split, "params": params}
    return orjson.dumps(body, default=_iso_format, option=orjson.OPT_SERIALIZE_NUMPY)


def _iso_format(value: object) -> str:
    """pandas' timestamps (and NaT) for orjson, which writes only the standard library's own datetimes."""
    if isinstance(value, pd.Timestamp) or value is pd.NaT:
        return value.isoformat()
    raise TypeError(f"{type(value).__name__} is not JSON serializable")


def records(predictions: list | dict) -> list:
    """An answer of ``both`` as one dict per row, whether it came as columns (``orient=columns``) or as records
    (a model logged before ``orient`` existed ignores it); labels and probabilities pass through."""
    if isinstance(predictions, dict):
        return pd.DataFrame(predictions).to_dict(orient="records")
    return predictions


def predict(
    url: str,
    flights: pd.DataFrame,
    output: str = "both",
    session: requests.Session | None = None,
    auth: tuple[str, str] | None = None,
) -> list:
    """POST the flights to ``url``/invocations as a user would, asking for ``output`` (label, probability, both);
    ``auth``: the stack's user and password for the local endpoint (``make serve``)."""
    body = invocation(flights, output)
    response = (session or requests).post(f"{url}/invocations", data=body, headers=JSON_HEADERS, timeout=60, auth=auth)
    return _answer(response.status_code, response.content)


def answer(content: bytes) -> list | dict:
    """The ``predictions`` of a 200 answer's body, decoded by orjson (about 0.3 ms for 10,000 rows of ``both``
    as columns, where ``json.loads`` takes about 2 ms)."""
    return orjson.loads(content)["predictions"]


def _answer(status: int, content: bytes) -> list:
    """The predictions of an ``/invocations`` answer, one dict per row; any other answer is one line."""
    if status != 200:
        raise TrainerError(
            f"the model server answered HTTP {status}: {content[:200].decode(errors='replace')}",
            "check that the model's signature matches the airline schema",
            exit_code=EXIT_FAILED,
        )
    return records(answer(content))
