"""PostgreSQL: in-cluster StatefulSet by default, nothing deployed for an external database."""

from __future__ import annotations

import pytest
from mock_harness import Deployment


def test_statefulset_pins_image_persists_data_and_probes(default_deployment: Deployment) -> None:
    sts = default_deployment.k8s_named("kubernetes:apps/v1:StatefulSet", "rapids-mlflow-postgres").inputs
    pod = sts["spec"]["template"]["spec"]
    container = pod["containers"][0]
    assert container["image"] == "postgres:17.6-bookworm"
    assert container["readinessProbe"]["exec"]["command"][0] == "pg_isready"
    assert container["livenessProbe"]["exec"]["command"][0] == "pg_isready"
    assert container["resources"]["limits"]["memory"] == "1Gi"
    assert pod["securityContext"]["runAsUser"] == 999 and pod["securityContext"]["runAsNonRoot"] is True
    claim = sts["spec"]["volumeClaimTemplates"][0]["spec"]
    assert claim["resources"]["requests"]["storage"] == "10Gi"
    assert "storageClassName" not in claim  # cluster default unless configured
    assert sts["spec"]["persistentVolumeClaimRetentionPolicy"]["whenDeleted"] == "Retain"
    env = {e["name"]: e for e in container["env"]}
    assert env["POSTGRES_PASSWORD"]["valueFrom"]["secretKeyRef"]["name"] == "rapids-mlflow-db-credentials"
    service = default_deployment.k8s_named("kubernetes:core/v1:Service", "rapids-mlflow-postgres").inputs
    assert service["spec"]["type"] == "ClusterIP"


def test_storage_size_and_class_come_from_config(deploy) -> None:
    d = deploy({"postgresStorageSize": "50Gi", "postgresStorageClass": "gp3"})
    claim = d.k8s_named("kubernetes:apps/v1:StatefulSet", "rapids-mlflow-postgres").inputs["spec"][
        "volumeClaimTemplates"
    ][0]["spec"]
    assert claim["resources"]["requests"]["storage"] == "50Gi"
    assert claim["storageClassName"] == "gp3"


def test_external_postgres_deploys_no_database_and_keeps_uri_secret(deploy) -> None:
    uri = "postgresql+psycopg2://mlflow:s3cr3t-value@db.example.internal:5432/mlflow"
    d = deploy({"postgres": "external", "postgresExternalUri": uri}, secret_keys=("postgresExternalUri",))
    assert not d.of_type("kubernetes:apps/v1:StatefulSet")
    policies = [r.inputs["metadata"]["name"] for r in d.of_type("kubernetes:networking.k8s.io/v1:NetworkPolicy")]
    assert policies == ["rapids-mlflow-tracking-traffic"]  # no PostgreSQL policy; the server's own remains
    assert not d.of_type("random:index/randomPassword:RandomPassword")
    secret = d.k8s_named("kubernetes:core/v1:Secret", "rapids-mlflow-db-credentials")
    assert secret.inputs["stringData"] == {"MLFLOW_BACKEND_STORE_URI": uri}


def test_external_uri_of_another_database_is_rejected_without_echoing_it(deploy) -> None:
    # The check runs inside an apply (the value is a secret Output), so the engine reports it wrapped.
    with pytest.raises(ValueError) as error:
        deploy(
            {"postgres": "external", "postgresExternalUri": "mysql://u:hunter2@h/db"},
            secret_keys=("postgresExternalUri",),
        )
    assert "postgresExternalUri" in str(error.value) and "hunter2" not in str(error.value)
    assert "pulumi config set --secret postgresExternalUri" in str(error.value)
