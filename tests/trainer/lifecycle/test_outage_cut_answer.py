"""A tracking server killed while it answers: the answer's headers arrive, its body stops short.

Seen in the suite: ``kill -9`` of MLflow's server mid-search cut a ``runs/update`` answer after its headers, and the
search ended at once with "gave up after the 90 s retry budget" (urllib3 retries a request only up to the answer's
headers, so the broken body reached the trainer unretried). The server here is a socket that does exactly that to
the first request and answers the next one as MLflow does, with MLflow's real client calling it.
"""

from __future__ import annotations

import json
import socket
import threading
from collections.abc import Iterator

import pytest
from airline_hpo.lifecycle import outage
from mlflow import MlflowClient
from mlflow.exceptions import MlflowException


class CutFirstAnswer:
    """Answers HTTP on 127.0.0.1: the first request gets its headers and 10 of 400 promised body bytes, then the
    connection closes (a server process killed mid-write); later requests get ``{}`` with 200, what MLflow's
    ``runs/log-parameter`` answers."""

    def __init__(self) -> None:
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.port = self.listener.getsockname()[1]
        self.requests: list[str] = []
        threading.Thread(target=self._serve, daemon=True).start()

    def _serve(self) -> None:
        while True:
            try:
                conn, _ = self.listener.accept()
            except OSError:
                return
            with conn:
                head = b""
                while b"\r\n\r\n" not in head:
                    head += conn.recv(65536)
                headers, _, body = head.partition(b"\r\n\r\n")
                length = next(
                    (
                        int(line.split(b":")[1])
                        for line in headers.split(b"\r\n")
                        if line.lower().startswith(b"content-length")
                    ),
                    0,
                )
                while len(body) < length:
                    body += conn.recv(65536)
                self.requests.append(headers.split(b" ")[1].decode())
                if len(self.requests) == 1:
                    conn.sendall(b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: 400\r\n\r\n")
                    conn.sendall(b'{"run_info"')
                else:
                    answer = json.dumps({}).encode()
                    conn.sendall(
                        b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nConnection: close\r\n"
                        b"Content-Length: " + str(len(answer)).encode() + b"\r\n\r\n" + answer
                    )

    def close(self) -> None:
        self.listener.close()


@pytest.fixture
def server(monkeypatch: pytest.MonkeyPatch) -> Iterator[CutFirstAnswer]:
    for name, value in outage.plan(5).env().items():
        monkeypatch.setenv(name, value)
    server = CutFirstAnswer()
    yield server
    server.close()


def test_a_cut_answer_fails_mlflows_call_at_once_and_is_a_glitch(server: CutFirstAnswer):
    """The defect: MLflow's client gives up on the first cut answer, with no wait for the server."""
    with pytest.raises(MlflowException, match=r"Connection broken|IncompleteRead") as error:
        MlflowClient(f"http://127.0.0.1:{server.port}").log_param("0" * 32, "n_estimators", "10")
    assert outage.is_glitch(error.value) and outage.is_outage(error.value)
    assert len(server.requests) == 1


def test_a_trial_write_whose_answer_was_cut_is_sent_again_and_succeeds(server: CutFirstAnswer):
    client = MlflowClient(f"http://127.0.0.1:{server.port}")
    outage.retry_glitches(lambda: client.log_param("0" * 32, "n_estimators", "10"), pause=0.01)
    assert server.requests == ["/api/2.0/mlflow/runs/log-parameter"] * 2


def test_a_refused_request_is_no_glitch():
    """A 4xx is an answer about what was sent: sending it again cannot help, so it is not retried."""
    from mlflow.exceptions import RestException

    refused = RestException({"error_code": "INVALID_PARAMETER_VALUE", "message": "bad"})
    assert not outage.is_glitch(refused)
