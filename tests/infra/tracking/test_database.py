"""PostgreSQL: in-cluster StatefulSet by default, nothing deployed for an external database."""

from __future__ import annotations

import pytest
from mlflow_platform.core.config import ConfigError
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
    assert sts["spec"]["persistentVolumeClaimRetentionPolicy"]["whenDeleted"] == "Retain"
    env = {e["name"]: e for e in container["env"]}
    # The password is a file from the Secret (the image's entrypoint reads POSTGRES_PASSWORD_FILE), never env.
    assert "POSTGRES_PASSWORD" not in env and all("valueFrom" not in e for e in env.values())
    password_file = env["POSTGRES_PASSWORD_FILE"]["value"]
    mounts = {m["mountPath"]: m for m in container["volumeMounts"]}
    mount = mounts[password_file.rsplit("/", 1)[0]]
    volume = next(v for v in pod["volumes"] if v["name"] == mount["name"])
    assert mount["readOnly"] is True and volume["secret"]["secretName"] == "rapids-mlflow-db-credentials"
    assert {"key": "POSTGRES_PASSWORD", "path": password_file.rsplit("/", 1)[1]} in volume["secret"]["items"]
    service = default_deployment.k8s_named("kubernetes:core/v1:Service", "rapids-mlflow-postgres").inputs
    assert service["spec"]["type"] == "ClusterIP"


STORAGE_CLASS = "kubernetes:storage.k8s.io/v1:StorageClass"
STATEFULSET = "kubernetes:apps/v1:StatefulSet"


def _claim(d: Deployment) -> dict:
    return d.k8s_named(STATEFULSET, "rapids-mlflow-postgres").inputs["spec"]["volumeClaimTemplates"][0]["spec"]


def test_on_eks_the_claim_names_an_encrypted_retained_ebs_class_the_stack_declares(default_deployment) -> None:
    """EKS 1.30+ has no default class: a claim without one stays Pending and `pulumi up` hangs."""
    claim = _claim(default_deployment)
    declared = default_deployment.k8s_named(STORAGE_CLASS, claim["storageClassName"]).inputs
    assert declared["provisioner"] == "ebs.csi.aws.com"
    assert declared["parameters"]["type"] == "gp3" and declared["parameters"]["encrypted"] == "true"
    assert declared["volumeBindingMode"] == "WaitForFirstConsumer"  # the volume's zone follows the pod
    assert declared["reclaimPolicy"] == "Retain" and declared["allowVolumeExpansion"] is True
    # The StatefulSet waits for the class, so its claim never refers to a class not yet created.
    sts = default_deployment.k8s_named(STATEFULSET, "rapids-mlflow-postgres")
    class_urn = default_deployment.k8s_named(STORAGE_CLASS, claim["storageClassName"]).urn
    assert class_urn in sts.dependencies


@pytest.mark.parametrize(
    "config",
    [
        {},
        {"postgresStorageClass": "gp2"},
        {"clusterKind": "other", "postgresStorageClass": "microk8s-hostpath"},
        {"keepDataOnDestroy": "false"},
    ],
)
def test_the_claim_always_names_a_class_the_stack_declares_or_the_user_named(deploy, config: dict) -> None:
    d = deploy(config)
    name = _claim(d)["storageClassName"]
    declared = [r.inputs["metadata"]["name"] for r in d.of_type(STORAGE_CLASS)]
    assert name == config.get("postgresStorageClass") or name in declared
    if "postgresStorageClass" in config:
        assert declared == []  # an existing class is used as it is, never redefined


def test_a_cluster_without_a_known_class_is_refused_at_preview(deploy) -> None:
    with pytest.raises(ConfigError, match=r"postgresStorageClass: is required when clusterKind is 'other'"):
        deploy({"clusterKind": "other"})


def test_destroy_keeps_the_namespace_that_holds_the_claim_by_default(default_deployment, deploy) -> None:
    namespace = default_deployment.one("kubernetes:core/v1:Namespace")
    assert namespace.retain_on_delete is True
    assert default_deployment.k8s_named(STATEFULSET, "rapids-mlflow-postgres").retain_on_delete is False
    disposable = deploy({"keepDataOnDestroy": "false"})
    assert disposable.one("kubernetes:core/v1:Namespace").retain_on_delete is False
    assert disposable.one(STORAGE_CLASS).inputs["reclaimPolicy"] == "Delete"  # no orphaned EBS volumes
    external = deploy(
        {"postgres": "external", "postgresExternalUri": "postgresql+psycopg2://u:p@h:5432/db"},
        secret_keys=("postgresExternalUri",),
    )
    assert external.one("kubernetes:core/v1:Namespace").retain_on_delete is False  # no data in the cluster
    assert not external.of_type(STORAGE_CLASS)


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
    policies = d.of_type("kubernetes:networking.k8s.io/v1:NetworkPolicy")
    names = {p.inputs["metadata"]["name"] for p in policies}
    assert {"rapids-mlflow-training-ingress", "rapids-mlflow-tracking-traffic"} <= names
    assert not any("postgres" in name for name in names)  # none for a database the stack does not run
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
