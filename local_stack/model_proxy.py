"""The local endpoint's front door: a small HTTP proxy that forwards to whichever model server is current.

MLflow's scoring server resolves its alias once, at start, so following an alias means starting another server.
The proxy keeps the port users call (``SERVE_PORT``) while servers come and go behind it: the supervisor starts
the new version's server beside the old one, switches the proxy to it only once it answers ``/ping``, waits until
the requests the old one is answering have finished, then stops it. No request fails during a switch, which a
restart on the same port could not promise. Every answer carries ``X-Model-Version``: the version that answered.

This is the local stand-in for what the cluster gets from Kubernetes itself (a Service in front of a rolling
update gated on readiness); it listens on 127.0.0.1 only. Every port needs a key: each request (``/ping``
too) must carry the stack's MLflow login as HTTP basic auth (:class:`Login`, compared in constant time), or it
gets 401 with ``WWW-Authenticate`` and never reaches a model server. The model servers themselves listen on Unix
sockets in a directory only this user may enter (:mod:`airline_hpo.serving.server`), so the proxy is the only
way in.
"""

from __future__ import annotations

import base64
import binascii
import hmac
import json
import threading
import time
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from airline_hpo.serving.server import connection

VERSION_HEADER = "X-Model-Version"
#: What a request without the right login is told (RFC 9110 11.6.1: a 401 names the scheme it wants).
CHALLENGE = 'Basic realm="model endpoint", charset="UTF-8"'
UNAUTHORIZED = json.dumps(
    {
        "error": "the endpoint asks for the stack's login: MLFLOW_TRACKING_USERNAME and MLFLOW_TRACKING_PASSWORD "
        "of `make env`"
    }
).encode()
#: Hop-by-hop headers (RFC 9110 7.6.1) and the ones the proxy sets itself.
_SKIP_HEADERS = {"connection", "keep-alive", "transfer-encoding", "content-length", "server", "date"}


@dataclass(frozen=True)
class Login:
    """The HTTP basic login the endpoint asks for: the stack's MLflow user (``MLFLOW_TRACKING_USERNAME`` and
    ``MLFLOW_TRACKING_PASSWORD`` of ``make env``)."""

    username: str
    password: str = field(repr=False)

    def admits(self, authorization: str | None) -> bool:
        """True when ``authorization`` (the request's header) is this login; user and password are compared in
        constant time (:func:`hmac.compare_digest`), so the answer's timing does not tell how much was right."""
        scheme, _, token = (authorization or "").partition(" ")
        if scheme.lower() != "basic":
            return False
        try:
            pair = base64.b64decode(token.strip(), validate=True)
        except (binascii.Error, ValueError):
            return False
        user, sep, password = pair.partition(b":")
        user_ok = hmac.compare_digest(user, self.username.encode())
        password_ok = hmac.compare_digest(password, self.password.encode())
        return bool(sep) and user_ok and password_ok


@dataclass(frozen=True)
class Backend:
    """One running model server: where it listens and the model version it loaded."""

    url: str
    version: str


class ModelProxy:
    """Forwards every request that carries ``login`` to the current backend; :meth:`switch` changes it
    atomically."""

    def __init__(self, host: str, port: int, login: Login, upstream_timeout: float = 120.0) -> None:
        self.login = login
        self._lock = threading.Condition()
        self._current: Backend | None = None
        self._in_flight: dict[Backend, int] = {}
        self.upstream_timeout = upstream_timeout
        self._server = ThreadingHTTPServer((host, port), self._handler_class())
        self._server.daemon_threads = True
        self._thread = threading.Thread(target=self._server.serve_forever, name="model-proxy", daemon=True)

    @property
    def url(self) -> str:
        host, port = self._server.server_address[:2]
        return f"http://{host}:{port}"

    @property
    def current(self) -> Backend | None:
        with self._lock:
            return self._current

    def start(self) -> ModelProxy:
        self._thread.start()
        return self

    def shutdown(self) -> None:
        self._server.shutdown()
        self._server.server_close()

    def switch(self, backend: Backend) -> Backend | None:
        """Send new requests to ``backend`` from now on; returns the previous one (still finishing its requests)."""
        with self._lock:
            previous, self._current = self._current, backend
            return previous

    def wait_drained(self, backend: Backend, timeout: float = 120.0) -> bool:
        """Wait until no request is being answered by ``backend``; False when ``timeout`` ran out first."""
        deadline = time.monotonic() + timeout
        with self._lock:
            while self._in_flight.get(backend, 0) > 0:
                left = deadline - time.monotonic()
                if left <= 0:
                    return False
                self._lock.wait(left)
        return True

    def _acquire(self) -> Backend | None:
        with self._lock:
            backend = self._current
            if backend is not None:
                self._in_flight[backend] = self._in_flight.get(backend, 0) + 1
            return backend

    def _release(self, backend: Backend) -> None:
        with self._lock:
            self._in_flight[backend] -= 1
            if not self._in_flight[backend]:
                del self._in_flight[backend]
                self._lock.notify_all()

    def _handler_class(self) -> type[BaseHTTPRequestHandler]:
        proxy = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"  # keep-alive: a client's connection is reused across requests
            # Headers and body go out in two writes: with Nagle on, the body waits for the client's delayed ACK
            # (40 ms a request on Linux).
            disable_nagle_algorithm = True

            def do_GET(self) -> None:
                self._forward()

            def do_POST(self) -> None:
                self._forward()

            def log_message(self, format: str, *args: object) -> None:
                """Quiet: one line per request would flood the log under a benchmark."""

            def _forward(self) -> None:
                if not proxy.login.admits(self.headers.get("Authorization")):
                    # The body is not read: the connection closes after the answer.
                    self.close_connection = True
                    self._reply(401, UNAUTHORIZED, "application/json", None, {"WWW-Authenticate": CHALLENGE})
                    return
                body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                backend = proxy._acquire()
                if backend is None:
                    self._reply(503, b'{"error": "no model version is loaded yet"}', "application/json", None)
                    return
                try:
                    status, headers, payload = proxy._call(backend, self.command, self.path, self.headers, body)
                except OSError as exc:
                    message = json.dumps({"error": f"model server for version {backend.version} failed: {exc}"})
                    self._reply(502, message.encode(), "application/json", backend)
                    return
                finally:
                    proxy._release(backend)
                self._reply(status, payload, headers.get("Content-Type", "application/json"), backend, headers)

            def _reply(
                self,
                status: int,
                payload: bytes,
                content_type: str,
                backend: Backend | None,
                headers: dict[str, str] | None = None,
            ) -> None:
                self.send_response(status)
                for name, value in (headers or {}).items():
                    if name.lower() not in _SKIP_HEADERS and name.lower() != "content-type":
                        self.send_header(name, value)
                if self.close_connection:
                    self.send_header("Connection", "close")
                self.send_header("Content-Type", content_type)
                self.send_header("Content-Length", str(len(payload)))
                if backend is not None:
                    self.send_header(VERSION_HEADER, backend.version)
                self.end_headers()
                self.wfile.write(payload)

        return Handler

    def _call(
        self, backend: Backend, method: str, path: str, headers: object, body: bytes
    ) -> tuple[int, dict[str, str], bytes]:
        conn = connection(backend.url, self.upstream_timeout)
        try:
            forwarded = {"Content-Type": headers.get("Content-Type", "application/json")}  # type: ignore[attr-defined]
            conn.request(method, path, body=body if method == "POST" else None, headers=forwarded)
            response = conn.getresponse()
            return response.status, dict(response.getheaders()), response.read()
        finally:
            conn.close()
