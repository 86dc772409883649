"""The S3 artifact store and its identity, as the program declares them."""

from __future__ import annotations

import json

import pytest
from mock_harness import Deployment, is_wire_secret, s3_accounts


def _policy(resource) -> dict:
    return json.loads(resource.inputs["policy"])


def test_bucket_is_private_encrypted_versioned_and_expires_old_versions(default_deployment: Deployment) -> None:
    d = default_deployment
    block = d.one("aws:s3/bucketPublicAccessBlock:BucketPublicAccessBlock").inputs
    assert all(
        block[k] is True for k in ("blockPublicAcls", "blockPublicPolicy", "ignorePublicAcls", "restrictPublicBuckets")
    )
    assert d.one("aws:s3/bucketOwnershipControls:BucketOwnershipControls").inputs["rule"] == {
        "objectOwnership": "BucketOwnerEnforced"
    }
    sse = d.one("aws:s3/bucketServerSideEncryptionConfiguration:BucketServerSideEncryptionConfiguration")
    assert sse.inputs["rules"][0]["applyServerSideEncryptionByDefault"] == {"sseAlgorithm": "AES256"}
    assert d.one("aws:s3/bucketVersioning:BucketVersioning").inputs["versioningConfiguration"]["status"] == "Enabled"
    rule = d.one("aws:s3/bucketLifecycleConfiguration:BucketLifecycleConfiguration").inputs["rules"][0]
    assert rule["status"] == "Enabled"
    assert rule["noncurrentVersionExpiration"]["noncurrentDays"] == 30
    assert d.one("aws:s3/bucket:Bucket").inputs["forceDestroy"] is False


def test_bucket_policy_denies_plain_http(default_deployment: Deployment) -> None:
    statement = _policy(default_deployment.one("aws:s3/bucketPolicy:BucketPolicy"))["Statement"][0]
    bucket = default_deployment.exports["bucket_name"]
    assert statement["Effect"] == "Deny" and statement["Principal"] == "*"
    assert statement["Condition"] == {"Bool": {"aws:SecureTransport": "false"}}
    assert statement["Resource"] == [f"arn:aws:s3:::{bucket}", f"arn:aws:s3:::{bucket}/*"]


def test_identity_may_only_touch_the_artifact_and_data_prefixes(default_deployment: Deployment) -> None:
    bucket_arn = f"arn:aws:s3:::{default_deployment.exports['bucket_name']}"
    statements = {s["Sid"]: s for s in _policy(default_deployment.one("aws:iam/userPolicy:UserPolicy"))["Statement"]}
    assert statements["ReadWriteArtifacts"]["Resource"] == [f"{bucket_arn}/mlflow/*"]
    assert statements["ReadDatasets"]["Action"] == ["s3:GetObject"]
    assert statements["ReadDatasets"]["Resource"] == [f"{bucket_arn}/datasets/*"]
    listing = statements["ListOwnPrefixes"]
    assert listing["Resource"] == [bucket_arn]
    assert "mlflow/*" in listing["Condition"]["StringLike"]["s3:prefix"]
    every_resource = [r for s in statements.values() for r in s["Resource"]]
    assert all(r.startswith(bucket_arn) for r in every_resource)


def test_access_key_secret_is_a_secret(default_deployment: Deployment) -> None:
    key = default_deployment.one("aws:iam/accessKey:AccessKey")
    assert "secret" in key.additional_secret_outputs
    s3_secret = default_deployment.k8s_named("kubernetes:core/v1:Secret", "rapids-mlflow-s3-credentials")
    assert is_wire_secret(s3_secret.wire_inputs["stringData"])
    assert s3_secret.inputs["stringData"]["AWS_SECRET_ACCESS_KEY"] == "mock-secret-access-key-value"


def test_irsa_replaces_the_iam_user_with_a_role_policy(deploy) -> None:
    arn = "arn:aws:iam::123456789012:role/team/mlflow-s3"
    d = deploy({"s3Identity": "irsa", "irsaRoleArn": arn})
    assert not d.of_type("aws:iam/user:User") and not d.of_type("aws:iam/accessKey:AccessKey")
    assert d.one("aws:iam/rolePolicy:RolePolicy").inputs["role"] == "mlflow-s3"
    assert not [s for s in d.of_type("kubernetes:core/v1:Secret") if "s3" in s.inputs["metadata"]["name"]]
    accounts = s3_accounts(d)
    assert {a.inputs["metadata"]["annotations"]["eks.amazonaws.com/role-arn"] for a in accounts} == {arn}
    env_names = {e["name"] for e in d.exports["kube_job_template"]["spec"]["template"]["spec"]["containers"][0]["env"]}
    assert "AWS_SECRET_ACCESS_KEY" not in env_names


@pytest.mark.parametrize(
    "existing_key", [None, "arn:aws:kms:us-east-1:123456789012:key/1234abcd-0000-4000-8000-00000000abcd"]
)
def test_kms_encryption_uses_a_key_the_identity_may_use(deploy, existing_key: str | None) -> None:
    config = {"s3Encryption": "aws-kms", **({"kmsKeyArn": existing_key} if existing_key else {})}
    d = deploy(config)
    keys = d.of_type("aws:kms/key:Key")
    assert len(keys) == (0 if existing_key else 1)
    if keys:
        assert keys[0].inputs["enableKeyRotation"] is True
    key_arn = existing_key or keys[0].outputs["arn"]
    sse = d.one("aws:s3/bucketServerSideEncryptionConfiguration:BucketServerSideEncryptionConfiguration")
    assert sse.inputs["rules"][0]["applyServerSideEncryptionByDefault"] == {
        "sseAlgorithm": "aws:kms",
        "kmsMasterKeyId": key_arn,
    }
    statements = {s["Sid"]: s for s in _policy(d.one("aws:iam/userPolicy:UserPolicy"))["Statement"]}
    assert statements["UseBucketKey"]["Resource"] == [key_arn]


def test_explicit_bucket_name_is_used_verbatim(deploy) -> None:
    d = deploy({"bucketName": "team-mlflow-artifacts"})
    assert d.exports["artifact_root"] == "s3://team-mlflow-artifacts/mlflow"
