"""The MLflow server of the local stack exposes Prometheus metrics: a scrape after a search finds the request
counters, summed over the server's workers, and they grow by the requests a client made."""

from __future__ import annotations

import re
import urllib.request

import pytest
from mlflow import MlflowClient
from mlflow.exceptions import MlflowException

from local_stack import tracking_server
from tests.stack_fixtures import use_stack

pytestmark = pytest.mark.integration

_SAMPLE = re.compile(r'^mlflow_http_request_total\{method="(\w+)",status="(\d+)"\} ([0-9.e+]+)$')


def _request_counts(tracking_uri: str, login: dict[str, str]) -> dict[tuple[str, str], float]:
    request = urllib.request.Request(f"{tracking_uri}/metrics", headers=tracking_server.auth_header(login))
    with urllib.request.urlopen(request, timeout=10) as resp:
        assert resp.status == 200
        assert resp.headers["Content-Type"].startswith("text/plain")
        text = resp.read().decode()
    assert "# TYPE mlflow_http_request_total counter" in text
    assert "mlflow_http_request_duration_seconds_bucket" in text
    return {(m[1], m[2]): float(m[3]) for line in text.splitlines() if (m := _SAMPLE.match(line))}


def test_metrics_count_the_requests_of_a_search(local_stack, monkeypatch) -> None:
    """A scraper needs the stack's login too (``/metrics`` answers 401 without: see the attacker test)."""
    uri = local_stack.stack.settings.tracking_uri
    login = use_stack(monkeypatch, local_stack.stack)
    before = _request_counts(uri, login)
    client = MlflowClient(uri)
    searches = 6
    for _ in range(searches):
        client.search_experiments(max_results=5)  # POST /api/2.0/mlflow/experiments/search
    with pytest.raises(MlflowException, match="RESOURCE_DOES_NOT_EXIST"):
        client.get_experiment("999999999")  # GET answered 404
    after = _request_counts(uri, login)
    # Two uvicorn workers serve the requests; the counters must add up over both (multiprocess mode).
    assert after.get(("POST", "200"), 0) - before.get(("POST", "200"), 0) == searches
    assert after.get(("GET", "404"), 0) - before.get(("GET", "404"), 0) == 1
