"""The local endpoint's supervisor process (started by :mod:`local_stack.model_serving`; not run by hand).

It owns the endpoint's port through :class:`local_stack.model_proxy.ModelProxy`, asks the registry every
``--poll-seconds`` which version the alias names (:func:`airline_hpo.serving.alias.alias_version`), and applies
the rule it shares with the cluster's alias follower (:func:`airline_hpo.serving.alias.version_to_serve`): a new
version's scoring server starts beside the old one, takes traffic only once ``/ping`` answers, and the old one
stops after its last request. A version that fails to load never takes traffic; the old one keeps serving.
SIGTERM (``make down``, Ctrl-C in ``make serve``) stops the model servers and the proxy.

The endpoint's key is the stack's MLflow login, from the environment :mod:`local_stack.model_serving` gives this
process (``MLFLOW_TRACKING_USERNAME``/``MLFLOW_TRACKING_PASSWORD``, never the command line, which any local user
can read). The model servers listen on Unix sockets in a private (0700) directory this process creates and
removes, so only the proxy, which asks for the key, can reach them.

User-fixable problems are logged as one ``error: ...`` line, which ``serve`` shows.
"""

from __future__ import annotations

import argparse
import os
import shutil
import signal
import sys
import tempfile
import threading
import time
from collections.abc import Sequence
from pathlib import Path

from local_stack.model_proxy import Backend, Login, ModelProxy

#: Where the endpoint's key comes from: the stack's MLflow login, as ``make env`` exports it.
LOGIN_ENV = ("MLFLOW_TRACKING_USERNAME", "MLFLOW_TRACKING_PASSWORD")
#: Seconds a model server may take to load its model and answer ``/ping``.
LOAD_TIMEOUT = 300.0


class _Stop(BaseException):
    """Raised in the main thread by SIGTERM/SIGINT: unwinds through ``finally`` so every server is stopped."""


def _log(message: str) -> None:
    print(f"{time.strftime('%H:%M:%S')} {message}", flush=True)


class Supervisor:
    def __init__(self, args: argparse.Namespace) -> None:
        self.args = args
        self.proxy: ModelProxy | None = None
        self.servers: dict[str, object] = {}  # version -> ModelServer
        self.failed: set[str] = set()
        self.served: str | None = None
        self.socket_dir: Path | None = None

    def run(self) -> int:
        from airline_hpo.errors import TrainerError
        from airline_hpo.serving.alias import alias_version, version_to_serve

        args = self.args
        username, password = os.environ.get(LOGIN_ENV[0], ""), os.environ.get(LOGIN_ENV[1], "")
        if not (username and password):
            print(f"error: {' and '.join(LOGIN_ENV)} are not set; start the endpoint with `make serve`", flush=True)
            return 2
        # mkdtemp: mode 0700 from the start, and a short path (a Unix socket's path is limited to 107 bytes).
        self.socket_dir = Path(tempfile.mkdtemp(prefix="airline-serve-"))
        try:
            self.proxy = ModelProxy(args.host, args.port, Login(username, password)).start()
        except OSError as exc:
            print(
                f"error: port {args.port} for the model endpoint cannot be bound ({exc.strerror}); "
                "choose another: SERVE_PORT=<port>",
                flush=True,
            )
            return 2
        _log(
            f"endpoint {self.proxy.url} for models:/{args.model_name}@{args.alias}; alias checked every "
            f"{args.poll_seconds:g}s"
        )
        while True:
            try:
                current = alias_version(args.model_name, args.alias)
            except Exception as exc:  # the registry is down or refuses us: keep serving what we have
                if self.served is None:
                    print(
                        f"error: cannot read {args.model_name}@{args.alias} from the registry ({exc}); "
                        "check `make status`",
                        flush=True,
                    )
                    return 1
                _log(f"cannot read the alias ({type(exc).__name__}); still serving version {self.served}")
                current = None
            if current is None and self.served is None:
                print(
                    f"error: no model version {args.model_name}@{args.alias} in the registry; run `make demo` "
                    "(or the hyperopt entry point) to register and promote one first",
                    flush=True,
                )
                return 2
            target = version_to_serve(self.served, current, self.failed)
            if target is not None:
                try:
                    self._switch_to(target)
                except TrainerError as exc:
                    self.failed.add(target)
                    if self.served is None:
                        print(f"error: version {target} of {args.model_name} did not load: {exc.problem}", flush=True)
                        return 1
                    _log(f"version {target} did not load ({exc.problem}); version {self.served} keeps serving")
            time.sleep(args.poll_seconds)

    def _switch_to(self, version: str) -> None:
        from airline_hpo.serving.server import ModelServer

        args = self.args
        uri = f"models:/{args.model_name}/{version}"
        log_dir = Path(args.log_dir)
        log_dir.mkdir(parents=True, exist_ok=True)
        _log(f"{args.model_name}@{args.alias} is version {version}: starting its model server beside the old one")
        log = log_dir / f"{args.model_name}-{version}.log"
        # A socket of its own: a version served again may start while its earlier server is still draining.
        socket_path = self.socket_dir / f"v{version}-{time.monotonic_ns()}.sock"
        server = ModelServer(uri, "127.0.0.1", 0, log, socket_path=socket_path).start()
        self.servers[version] = server
        try:
            started = time.monotonic()
            server.wait_ready(LOAD_TIMEOUT)
        except BaseException:
            self.servers.pop(version).stop()
            raise
        previous = self.proxy.switch(Backend(server.url, version))
        self.served = version
        _log(f"now serving version {version} (loaded in {time.monotonic() - started:.0f}s)")
        if previous is not None:
            threading.Thread(target=self._retire, args=(previous,), daemon=True).start()

    def _retire(self, backend: Backend) -> None:
        """Stop a replaced server once the requests it is answering have finished."""
        self.proxy.wait_drained(backend)
        server = self.servers.pop(backend.version, None)
        if server is not None:
            server.stop()
            _log(f"stopped the model server of version {backend.version}")

    def close(self) -> None:
        for server in list(self.servers.values()):
            server.stop()
        if self.proxy is not None:
            self.proxy.shutdown()
        if self.socket_dir is not None:
            shutil.rmtree(self.socket_dir, ignore_errors=True)


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m local_stack.model_supervisor", description=__doc__.splitlines()[0])
    parser.add_argument("--model-name", required=True)
    parser.add_argument("--alias", required=True)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--poll-seconds", type=float, default=30.0)
    parser.add_argument("--log-dir", required=True)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    supervisor = Supervisor(_parser().parse_args(argv))

    def _raise_stop(signum: int, _frame: object) -> None:
        raise _Stop(signum)

    signal.signal(signal.SIGTERM, _raise_stop)
    signal.signal(signal.SIGINT, _raise_stop)
    try:
        return supervisor.run()
    except _Stop:
        _log("stopping")
        return 0
    finally:
        # Stopping must not be interrupted by a second signal half-way (servers would be left running).
        signal.signal(signal.SIGTERM, signal.SIG_IGN)
        signal.signal(signal.SIGINT, signal.SIG_IGN)
        supervisor.close()
        _log("stopped")


if __name__ == "__main__":
    sys.exit(main())
