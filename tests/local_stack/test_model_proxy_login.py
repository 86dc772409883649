"""The local endpoint's lock, on a real proxy listening on 127.0.0.1: only the stack's login gets past it.

No model server is needed to see the lock: a request that gets past it is answered 503 ("no model version is
loaded yet") by the proxy itself, one that does not gets 401 with a Basic challenge and never reaches that point.
(The whole endpoint, with model servers on their sockets and an attacker, is test_local_endpoint_attack.py.)
"""

from __future__ import annotations

import base64
from collections.abc import Iterator

import pytest
import requests

from local_stack.model_proxy import Login, ModelProxy
from local_stack.processes import free_ports

USER, PASSWORD = "admin", "s3cret-Password_-42"  # the stack's are secrets.token_urlsafe: ASCII


@pytest.fixture
def proxy() -> Iterator[ModelProxy]:
    (port,) = free_ports(1)
    proxy = ModelProxy("127.0.0.1", port, Login(USER, PASSWORD)).start()
    try:
        yield proxy
    finally:
        proxy.shutdown()


def _basic(pair: bytes) -> dict[str, str]:
    return {"Authorization": "Basic " + base64.b64encode(pair).decode()}


@pytest.mark.parametrize(
    "headers",
    [
        {},
        _basic(b"admin:wrong"),
        _basic(b"Admin:" + PASSWORD.encode()),
        _basic(b"admin:" + PASSWORD.encode() + b" "),
        _basic(b"admin"),
        _basic(b""),
        {"Authorization": "Bearer " + PASSWORD},
        {"Authorization": "Basic not base64!"},
        {"Authorization": "Basic"},
    ],
    ids=["none", "wrong-password", "wrong-user-case", "trailing-space", "no-colon", "empty", "bearer", "bad", "bare"],
)
def test_a_request_without_the_login_gets_401_with_a_basic_challenge(proxy, headers) -> None:
    for method, path in (("GET", "/ping"), ("POST", "/invocations")):
        response = requests.request(method, f"{proxy.url}{path}", headers=headers, data=b"{}", timeout=10)
        assert response.status_code == 401, (method, path)
        assert response.headers["WWW-Authenticate"].startswith('Basic realm="model endpoint"')
        assert "MLFLOW_TRACKING_PASSWORD" in response.json()["error"]


def test_the_login_gets_past_the_lock_and_the_connection_stays_usable(proxy) -> None:
    session = requests.Session()
    assert session.get(f"{proxy.url}/ping", timeout=10).status_code == 401
    session.auth = (USER, PASSWORD)
    for _ in range(3):  # after a 401 that closed the connection, the next requests reconnect and pass
        assert session.post(f"{proxy.url}/invocations", json={}, timeout=10).status_code == 503
        assert session.get(f"{proxy.url}/ping", timeout=10).status_code == 503


def test_login_repr_hides_the_password() -> None:
    assert PASSWORD not in repr(Login(USER, PASSWORD))
