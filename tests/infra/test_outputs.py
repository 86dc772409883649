"""Stack outputs and the component structure a user sees in `pulumi stack`."""

from __future__ import annotations

import json

from mock_harness import REPO, Deployment

EXPECTED_EXPORTS = {
    "namespace",
    "tracking_uri",
    "kube_mlflow_tracking_uri",
    "port_forward_command",
    "artifact_root",
    "data_root",
    "bucket_name",
    "aws_region",
    "training_service_account",
    "repository_uri",
    "kube_context",
    "kube_job_template",
}


def test_outputs_feed_mlflow_run(default_deployment: Deployment) -> None:
    e = default_deployment.exports
    assert set(e) == EXPECTED_EXPORTS
    assert e["tracking_uri"] == "http://localhost:5000"
    assert e["port_forward_command"] == "kubectl -n mlflow port-forward svc/rapids-mlflow-tracking 5000:5000"
    assert e["repository_uri"].endswith(".dkr.ecr.us-east-1.amazonaws.com/rapids-mlflow-dev/airline-hpo")
    assert default_deployment.secret_exports == set()


def test_configured_registry_replaces_the_ecr_repository(deploy) -> None:
    d = deploy({"trainingRepositoryUri": "localhost:32000/airline-hpo", "kubernetes:context": "microk8s"})
    assert "aws:ecr/repository:Repository" not in d.types
    assert d.exports["repository_uri"] == "localhost:32000/airline-hpo"
    assert d.exports["kube_context"] == "microk8s"


def test_serving_adds_the_endpoints_url_and_nothing_else(deploy) -> None:
    e = deploy({"serving": "true", "servingImageTag": "0a1b2c3"}).exports
    assert set(e) == EXPECTED_EXPORTS | {"serving_url"}
    assert e["serving_url"] == "http://rapids-mlflow-serving.mlflow.svc.cluster.local:8080"


def test_every_resource_belongs_to_a_component_and_shares_the_prefix(deploy) -> None:
    for r in deploy({"serving": "true", "servingImageTag": "0a1b2c3"}).resources:
        assert r.name.startswith("rapids-mlflow-"), r.name
        if r.custom:
            assert "rapids-mlflow:platform:" in r.parent, f"{r.name} is not parented to a component"


def test_every_kubernetes_object_is_labelled_and_namespaced(deploy) -> None:
    for r in deploy({"serving": "true", "servingImageTag": "0a1b2c3"}).resources:
        if not r.type.startswith("kubernetes:") or r.type.startswith("kubernetes:helm"):
            continue
        metadata = r.inputs["metadata"]
        assert metadata["labels"]["app.kubernetes.io/part-of"] == "rapids-mlflow-stack", r.name
        assert metadata["labels"]["app.kubernetes.io/managed-by"] == "pulumi", r.name
        if r.type not in {"kubernetes:core/v1:Namespace", "kubernetes:storage.k8s.io/v1:StorageClass"}:  # cluster-wide
            assert metadata["namespace"] == "mlflow", r.name


def test_recorded_outputs_of_the_bridge_tests_match_the_program(default_deployment: Deployment) -> None:
    """`tests/trainer/cluster/fixtures/stack_outputs.json` stands in for a real `pulumi stack output --json`;
    if the program's outputs change, the bridge must be re-tested against the new shape."""
    recorded = json.loads((REPO / "tests" / "trainer" / "cluster" / "fixtures" / "stack_outputs.json").read_text())
    assert set(recorded) == set(default_deployment.exports)
    for key, value in default_deployment.exports.items():
        if key not in {"bucket_name", "artifact_root", "data_root", "repository_uri"}:  # AWS-generated names
            assert recorded[key] == value, key
