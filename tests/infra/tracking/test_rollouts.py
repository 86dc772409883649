"""Rollouts: a rotated Secret restarts the pods that read it; the schema migrates once per rollout."""

from __future__ import annotations

from mock_harness import Deployment, ProviderMocks, is_wire_secret

DEPLOYMENT = "kubernetes:apps/v1:Deployment"
STATEFULSET = "kubernetes:apps/v1:StatefulSet"
JOB = "kubernetes:batch/v1:Job"


def _template(d: Deployment, type_: str, name: str) -> dict:
    return d.k8s_named(type_, name).inputs["spec"]["template"]


def _checksums(d: Deployment) -> tuple[str, str]:
    tracking = _template(d, DEPLOYMENT, "rapids-mlflow-tracking")["metadata"]["annotations"]["checksum/secrets"]
    database = _template(d, STATEFULSET, "rapids-mlflow-postgres")["metadata"]["annotations"]["checksum/secrets"]
    return tracking, database


def test_a_rotated_s3_key_changes_the_tracking_pods_and_only_them(deploy, monkeypatch) -> None:
    before = _checksums(deploy({}))
    monkeypatch.setattr(ProviderMocks, "access_key_secret", "rotated-secret-access-key-value")
    after = _checksums(deploy({}))
    assert after[0] != before[0]  # the server reads the S3 key: its pods roll
    assert after[1] == before[1]  # PostgreSQL does not: it keeps running


def test_the_checksum_is_a_plain_digest_that_shows_in_previews(deploy) -> None:
    d = deploy({"basicAuth": "true"})
    for type_, name in ((DEPLOYMENT, "rapids-mlflow-tracking"), (STATEFULSET, "rapids-mlflow-postgres")):
        wire = d.k8s_named(type_, name).wire_inputs["spec"]["template"]["metadata"]["annotations"]["checksum/secrets"]
        assert not is_wire_secret(wire)
        assert len(wire) == 64 and set(wire) <= set("0123456789abcdef")
    secret_values = {
        v for s in d.of_type("kubernetes:core/v1:Secret") for v in s.inputs["stringData"].values() if len(v) > 8
    }
    assert not any(v in repr(_checksums(d)) for v in secret_values)


def test_basic_auth_secrets_count_for_the_tracking_pods(deploy) -> None:
    assert _checksums(deploy({}))[0] != _checksums(deploy({"basicAuth": "true"}))[0]


def test_the_schema_migrates_once_before_the_replicas_roll(deploy) -> None:
    d = deploy({"trackingReplicas": "3"})
    deployment = d.k8s_named(DEPLOYMENT, "rapids-mlflow-tracking")
    assert deployment.inputs["spec"]["replicas"] == 3
    assert "initContainers" not in deployment.inputs["spec"]["template"]["spec"]  # no per-replica migration
    (job,) = d.of_type(JOB)
    assert job.urn in deployment.dependencies  # Pulumi waits for the Job to complete before the rollout
    spec = job.inputs["spec"]
    assert spec["template"]["spec"]["restartPolicy"] == "Never"
    assert "ttlSecondsAfterFinished" not in spec  # Pulumi owns it; a TTL would delete it behind Pulumi's back


def test_a_new_image_or_another_database_reruns_the_migration_an_unchanged_stack_does_not(deploy) -> None:
    def job_name(config: dict[str, str], secret_keys: tuple[str, ...] = ()) -> str:
        (job,) = deploy(config, secret_keys=secret_keys).of_type(JOB)
        return job.inputs["metadata"]["name"]

    first = job_name({})
    assert first == job_name({}) and first.startswith("rapids-mlflow-db-upgrade-")
    assert job_name({"trackingImage": "ghcr.io/mlflow/mlflow:v3.17.3-full"}) != first
    external = {"postgres": "external", "postgresExternalUri": "postgresql+psycopg2://u:p@a.example.com:5432/m"}
    other = {**external, "postgresExternalUri": "postgresql+psycopg2://u:p@b.example.com:5432/m"}
    keys = ("postgresExternalUri",)
    assert job_name(external, keys) != job_name(other, keys)
    assert len(job_name({"namePrefix": "p" * 40})) <= 63
