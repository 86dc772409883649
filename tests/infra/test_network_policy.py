"""NetworkPolicies: who may reach PostgreSQL and the tracking server, and where the server may connect."""

from __future__ import annotations

from mock_harness import Deployment


def _policy(d: Deployment, name: str) -> dict:
    return d.k8s_named("kubernetes:networking.k8s.io/v1:NetworkPolicy", name).inputs["spec"]


def _pod_labels(d: Deployment, type_: str, name: str) -> dict[str, str]:
    return d.k8s_named(type_, name).inputs["spec"]["template"]["metadata"]["labels"]


def _selects(selector: dict, pod_labels: dict[str, str]) -> bool:
    return selector["matchLabels"].items() <= pod_labels.items()


def test_postgres_accepts_only_the_tracking_server_and_its_migration(default_deployment: Deployment) -> None:
    d = default_deployment
    policy = _policy(d, "rapids-mlflow-postgres-ingress")
    postgres_pod = _pod_labels(d, "kubernetes:apps/v1:StatefulSet", "rapids-mlflow-postgres")
    tracking_pod = _pod_labels(d, "kubernetes:apps/v1:Deployment", "rapids-mlflow-tracking")
    (migration,) = d.of_type("kubernetes:batch/v1:Job")
    migration_pod = migration.inputs["spec"]["template"]["metadata"]["labels"]
    assert _selects(policy["podSelector"], postgres_pod)
    assert policy["policyTypes"] == ["Ingress"]
    (rule,) = policy["ingress"]
    peers = [p["podSelector"] for p in rule["from"]]
    assert all(set(p) == {"podSelector"} for p in rule["from"])  # pods of this namespace only
    assert [any(_selects(p, pod) for p in peers) for pod in (tracking_pod, migration_pod, postgres_pod)] == [
        True,
        True,
        False,
    ]
    assert rule["ports"] == [{"protocol": "TCP", "port": 5432}]
