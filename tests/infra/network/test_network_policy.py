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


def _tracking_policy(d: Deployment) -> dict:
    return _policy(d, "rapids-mlflow-tracking-traffic")


def test_the_tracking_server_accepts_only_its_namespace_on_its_port_by_default(default_deployment: Deployment) -> None:
    d = default_deployment
    policy = _tracking_policy(d)
    assert _selects(policy["podSelector"], _pod_labels(d, "kubernetes:apps/v1:Deployment", "rapids-mlflow-tracking"))
    assert policy["policyTypes"] == ["Ingress", "Egress"]
    (rule,) = policy["ingress"]
    assert rule["from"] == [{"podSelector": {}}]  # pods of the platform namespace (training Jobs), nothing else
    assert rule["ports"] == [{"protocol": "TCP", "port": 5000}]


def test_the_tracking_server_reaches_only_the_database_dns_and_https(default_deployment: Deployment) -> None:
    d = default_deployment
    database, dns, https = _tracking_policy(d)["egress"]
    postgres_pod = _pod_labels(d, "kubernetes:apps/v1:StatefulSet", "rapids-mlflow-postgres")
    ((peer,),) = [database["to"]]
    assert set(peer) == {"podSelector"} and _selects(peer["podSelector"], postgres_pod)
    assert database["ports"] == [{"protocol": "TCP", "port": 5432}]
    assert dns["to"] == [{"namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": "kube-system"}}}]
    assert sorted(p["protocol"] for p in dns["ports"]) == ["TCP", "UDP"] and {p["port"] for p in dns["ports"]} == {53}
    assert https["ports"] == [{"protocol": "TCP", "port": 443}]


def test_an_exposed_server_admits_the_load_balancer_sources_only(deploy) -> None:
    d = deploy({"serviceType": "LoadBalancer", "loadBalancerSourceRanges": "203.0.113.0/24"})
    (rule,) = _tracking_policy(d)["ingress"]
    assert rule["from"] == [{"podSelector": {}}, {"ipBlock": {"cidr": "203.0.113.0/24"}}]
    d = deploy({"serviceType": "NodePort", "externalUrl": "http://10.0.0.5:30500"})
    (rule,) = _tracking_policy(d)["ingress"]
    assert {"ipBlock": {"cidr": "0.0.0.0/0"}} in rule["from"]


def test_with_an_external_database_the_server_may_reach_port_5432_anywhere(deploy) -> None:
    uri = "postgresql+psycopg2://u:p@rds.example.com:5432/mlflow"
    d = deploy({"postgres": "external", "postgresExternalUri": uri}, secret_keys=("postgresExternalUri",))
    database = _tracking_policy(d)["egress"][0]
    assert database["to"] == [{"ipBlock": {"cidr": "0.0.0.0/0"}}, {"ipBlock": {"cidr": "::/0"}}]
    assert database["ports"] == [{"protocol": "TCP", "port": 5432}]
