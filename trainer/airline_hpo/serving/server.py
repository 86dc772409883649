"""``mlflow models serve`` as a child process group: start it, wait for ``/ping``, ask it, always stop it.

The ``serve_check`` entry point uses one for a few seconds; the local endpoint (``make serve``) keeps one per
served version and swaps them. MLflow execs ``uvicorn`` by name, so this interpreter's scripts go first on PATH
(a venv need not be active).
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Mapping
from pathlib import Path

import pandas as pd
import requests

from airline_hpo.errors import EXIT_FAILED, TrainerError


def free_port(host: str = "127.0.0.1") -> int:
    with socket.socket() as sock:
        sock.bind((host, 0))
        return sock.getsockname()[1]


def server_command(model_uri: str, host: str, port: int, python: str = sys.executable) -> list[str]:
    """MLflow's scoring server for ``model_uri`` in this environment (``--env-manager local``: no new venv)."""
    serve = ["models", "serve", "-m", model_uri, "--env-manager", "local"]
    return [python, "-m", "mlflow", *serve, "-h", host, "-p", str(port)]


def server_env(base: Mapping[str, str] | None = None) -> dict[str, str]:
    base = dict(os.environ if base is None else base)
    return {**base, "PATH": os.pathsep.join([str(Path(sys.executable).parent), base.get("PATH", "")])}


class ModelServer:
    """``mlflow models serve`` as a child process group, started and always stopped by ``with``."""

    def __init__(self, model_uri: str, host: str, port: int, log_path: Path) -> None:
        self.model_uri, self.host, self.port, self.log_path = model_uri, host, port, log_path
        self.url = f"http://{host}:{port}"
        self.process: subprocess.Popen | None = None

    def __enter__(self) -> ModelServer:
        return self.start()

    def start(self, env: Mapping[str, str] | None = None) -> ModelServer:
        with open(self.log_path, "ab") as log:
            self.process = subprocess.Popen(
                server_command(self.model_uri, self.host, self.port),
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                env=server_env(env),
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
            try:
                if requests.get(f"{self.url}/ping", timeout=2).status_code == 200:
                    return
            except requests.RequestException:
                pass
            time.sleep(0.5)
        raise TrainerError(
            f"the model server did not answer /ping within {timeout:.0f}s",
            f"read {self.log_path}; raise --timeout on a slow machine",
            exit_code=EXIT_FAILED,
        )

    def predict(self, flights: pd.DataFrame, output: str = "both") -> list:
        return predict(self.url, flights, output)

    def stop(self) -> None:
        if self.process is None or self.process.poll() is not None:
            return
        os.killpg(self.process.pid, signal.SIGTERM)
        try:
            self.process.wait(timeout=15)
        except subprocess.TimeoutExpired:
            os.killpg(self.process.pid, signal.SIGKILL)
            self.process.wait(timeout=5)


def predict(url: str, flights: pd.DataFrame, output: str = "both", session: requests.Session | None = None) -> list:
    """POST the flights to ``url``/invocations as a user would, asking for ``output`` (label, probability, both)."""
    payload = {"dataframe_split": flights.to_dict(orient="split", index=False), "params": {"output": output}}
    response = (session or requests).post(f"{url}/invocations", json=payload, timeout=60)
    if response.status_code != 200:
        raise TrainerError(
            f"the model server answered HTTP {response.status_code}: {response.text[:200]}",
            "check that the model's signature matches the airline schema",
            exit_code=EXIT_FAILED,
        )
    return response.json()["predictions"]
