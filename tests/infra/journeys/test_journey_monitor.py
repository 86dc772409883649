"""Journey: monitor the tracking server with a Prometheus operator in its own namespace.

Chained: the program's ServiceMonitor (its endpoint and credentials), the program's NetworkPolicies judged with the
API's semantics (`network_policy_semantics`) for a Prometheus pod in `monitoring`, and the Secrets the
ServiceMonitor points Prometheus at.
"""

from __future__ import annotations

from journey_helpers import named, of_kind, pod, pod_template_labels
from network_policy_semantics import allowed

CONFIG = {"serviceMonitor": "true", "basicAuth": "true"}


def test_prometheus_in_its_namespace_can_scrape_every_tracking_pod(deploy) -> None:
    d = deploy(CONFIG)
    policies = of_kind(d, "NetworkPolicy")
    tracking = pod("mlflow", pod_template_labels(named(d, "Deployment", "rapids-mlflow-tracking")))
    prometheus = pod("monitoring", {"app.kubernetes.io/name": "prometheus"})
    assert allowed(policies, prometheus, tracking, 5000)
    # ...and nothing else from another namespace.
    assert not allowed(policies, pod("team-b", {"app": "x"}), tracking, 5000)


def test_prometheus_signs_in_as_an_ordinary_user_never_as_the_admin(deploy) -> None:
    d = deploy(CONFIG)
    (monitor,) = of_kind(d, "ServiceMonitor")
    auth = monitor["spec"]["endpoints"][0]["basicAuth"]
    secret = named(d, "Secret", auth["password"]["name"])
    admin = named(d, "Secret", "rapids-mlflow-tracking-auth")
    assert secret["metadata"]["name"] != admin["metadata"]["name"]
    assert auth["username"]["key"] in secret["stringData"] and auth["password"]["key"] in secret["stringData"]
    assert "MLFLOW_AUTH_ADMIN_PASSWORD" not in secret["stringData"]
