"""``make serve``: the local stack's champion on a long-running endpoint that follows its alias.

The endpoint is one more stack process, found and stopped through its PID file like the others (``make down``
stops it too): a supervisor (:mod:`local_stack.model_supervisor`) that owns the port, runs MLflow's scoring
server for the version the alias names, and swaps in a new one when the alias moves. ``serve`` starts it
detached in its own session and either returns once it answers (``--detach``, what ``make demo`` uses) or stays
in the foreground printing its log until Ctrl-C, which stops it.
"""

from __future__ import annotations

import json
import os
import sys
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path

import requests

from local_stack import tracking_server
from local_stack.errors import StackError
from local_stack.processes import ServiceProcess, log_tail, port_in_use
from local_stack.settings import REPO_ROOT, StackSettings

SERVICE = "serving"
PORT_ENV = "SERVE_PORT"
DEFAULT_PORT = 5050
#: The alias is looked up this often (seconds): a move is served within this plus a model server's start-up.
DEFAULT_POLL_SECONDS = 30.0


def serve_port(raw: str | None = None) -> int:
    """``SERVE_PORT`` (or ``raw``) as a port, or one line naming the variable and the fix."""
    raw = os.environ.get(PORT_ENV, "") if raw is None else raw
    if raw == "":
        return DEFAULT_PORT
    try:
        port = int(raw)
    except ValueError:
        port = 0
    if not 1 <= port <= 65535:
        raise StackError(f"{PORT_ENV}={raw!r} is not a port in 1-65535; pass e.g. {PORT_ENV}={DEFAULT_PORT}")
    return port


@dataclass(frozen=True)
class ServingConfig:
    """What the endpoint serves and where; saved beside the PID file so a second ``serve`` can compare."""

    model_name: str = "airline-delay"
    alias: str = "champion"
    port: int = DEFAULT_PORT
    poll_seconds: float = DEFAULT_POLL_SECONDS
    host: str = "127.0.0.1"

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}"

    @property
    def model_uri(self) -> str:
        return f"models:/{self.model_name}@{self.alias}"

    def argv(self, settings: StackSettings) -> list[str]:
        return [
            sys.executable,
            "-m",
            "local_stack.model_supervisor",
            "--model-name",
            self.model_name,
            "--alias",
            self.alias,
            "--host",
            self.host,
            "--port",
            str(self.port),
            "--poll-seconds",
            str(self.poll_seconds),
            "--log-dir",
            str(settings.log_dir / "models"),
        ]


def config_file(settings: StackSettings) -> Path:
    return settings.run_dir / f"{SERVICE}.json"


def process(settings: StackSettings) -> ServiceProcess:
    # The supervisor stops its model servers on SIGTERM (each up to 15 s); SIGKILL only after that.
    return ServiceProcess(SERVICE, settings.pid_file(SERVICE), settings.log_file(SERVICE), stop_timeout=40.0)


def supervisor_env(settings: StackSettings, client_env: dict[str, str]) -> dict[str, str]:
    """Only what MLflow's client needs: the tracking URI (artifacts come through its proxy) and the login; no S3
    keys. ``trainer/`` on the path: the supervisor shares the alias rule with the cluster's."""
    keep = ("MLFLOW_TRACKING_URI", "MLFLOW_TRACKING_USERNAME", "MLFLOW_TRACKING_PASSWORD")
    return {
        "PATH": os.environ.get("PATH", ""),
        "HOME": os.environ.get("HOME", "/tmp"),
        "PYTHONPATH": os.pathsep.join([str(REPO_ROOT / "trainer"), str(REPO_ROOT)]),
        "PYTHONUNBUFFERED": "1",
        "MLFLOW_DISABLE_TELEMETRY": "true",
        **{name: client_env[name] for name in keep if name in client_env},
    }


def running_config(settings: StackSettings) -> ServingConfig | None:
    """The config of the endpoint that runs now, or None when none runs."""
    if process(settings).running_pid() is None:
        return None
    try:
        return ServingConfig(**json.loads(config_file(settings).read_text()))
    except (OSError, ValueError, TypeError):
        return None


def _last_error(path: Path) -> str | None:
    lines = [line for line in path.read_text(errors="replace").splitlines() if line.startswith("error: ")]
    return lines[-1].removeprefix("error: ") if lines else None


def start(settings: StackSettings, client_env: dict[str, str], config: ServingConfig, timeout: float = 300.0) -> bool:
    """Start the endpoint and wait until it answers ``/ping``; False when the same one was already running."""
    auth = {k: v for k, v in client_env.items() if k in ("MLFLOW_TRACKING_USERNAME", "MLFLOW_TRACKING_PASSWORD")}
    try:
        ready = tracking_server.is_ready(settings.tracking_uri, auth)
    except OSError:
        ready = False
    if not ready:
        raise StackError("the local stack's MLflow server does not answer; start the stack with `make up`")
    running = running_config(settings)
    if running is not None:
        if running == config:
            return False
        raise StackError(
            f"the endpoint already serves {running.model_uri} on port {running.port}; stop it with "
            "`python -m local_stack serve --stop` (or `make down`) first"
        )
    if port_in_use(config.host, config.port):
        raise StackError(
            f"port {config.port} for the model endpoint is already in use; choose another: {PORT_ENV}=<port>"
        )
    proc = process(settings)
    settings.log_dir.mkdir(parents=True, exist_ok=True)
    proc.start(config.argv(settings), env=supervisor_env(settings, client_env), cwd=REPO_ROOT)
    config_file(settings).write_text(json.dumps(asdict(config)))
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.running_pid() is None:
            problem = _last_error(proc.log_file)
            config_file(settings).unlink(missing_ok=True)
            if problem:
                raise StackError(problem)
            raise StackError(
                f"the model endpoint exited during start-up; last lines of {proc.log_file}:\n{log_tail(proc.log_file)}"
            )
        try:
            if requests.get(f"{config.url}/ping", timeout=2).status_code == 200:
                return True
        except requests.RequestException:
            pass
        time.sleep(0.5)
    stop(settings)
    raise StackError(f"the model endpoint did not answer /ping within {timeout:.0f}s; read {proc.log_file}")


def stop(settings: StackSettings) -> bool:
    """Stop the endpoint and its model servers; False when none ran."""
    stopped = process(settings).stop()
    config_file(settings).unlink(missing_ok=True)
    return stopped


def follow_log(settings: StackSettings, out: Callable[[str], None] = print, poll: float = 0.5) -> int:
    """Print the endpoint's log as it grows until it exits (1) or Ctrl-C stops it here (0)."""
    proc = process(settings)
    offset = proc.log_file.stat().st_size if proc.log_file.exists() else 0
    try:
        while True:
            with open(proc.log_file, "rb") as log:
                log.seek(offset)
                chunk = log.read()
            offset += len(chunk)
            for line in chunk.decode(errors="replace").splitlines():
                out(line)
            if proc.running_pid() is None:
                return 1
            time.sleep(poll)
    except KeyboardInterrupt:
        stop(settings)
        return 0
