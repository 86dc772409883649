"""The AWS half of the stack, applied to moto with IAM enforcement on, used by MLflow's own S3 artifact code.

The program runs under Pulumi's mocks; every AWS resource it declares is created in a moto server on
127.0.0.1 (`moto_stack.apply`); then enforcement is switched on (moto's `/moto-api/reset-auth`, the server
side of `INITIAL_NO_AUTH_ACTION_COUNT`) and MLflow's `S3ArtifactRepository` runs with the access key the
stack's IAM user got. moto then signs-checks every request and evaluates the caller's IAM policies.

What moto 5.2.5 cannot judge (read from `moto/iam/access_control.py` and `moto/iam/policy_conditions.py`):
its condition engine implements only `StringEquals` and skips every other operator, so the `s3:prefix`
condition on ListBucket and the bucket policy's `aws:SecureTransport` condition are not evaluated. Listing
outside the prefix is therefore not refused by moto, and the TLS-only Deny applies to every request, TLS or
not. Those statements are linted by parliament (test_aws_policies.py) and only real AWS shows their effect.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest
import requests
from boto3.exceptions import S3UploadFailedError
from botocore.exceptions import ClientError
from mlflow.exceptions import MlflowException
from moto_stack import ADMIN_POLICY, DATASET_KEY, OTHER_BUCKET, MotoStack, client, running_stack


@pytest.fixture(scope="module")
def stack() -> Iterator[MotoStack]:
    with running_stack({}) as applied:
        yield applied


@pytest.fixture
def model_file(tmp_path: Path) -> Path:
    path = tmp_path / "model.pkl"
    path.write_bytes(b"a trained forest")
    return path


def test_the_stack_identity_logs_and_reads_artifacts_under_the_artifact_prefix(
    stack: MotoStack, model_file: Path, tmp_path: Path
) -> None:
    run_root = f"s3://{stack.applied.bucket}/mlflow/1/0123abcd/artifacts"
    repo = stack.repo(run_root)
    repo.log_artifact(str(model_file), "model")
    assert [f.path for f in repo.list_artifacts("model")] == ["model/model.pkl"]
    (tmp_path / "out").mkdir()
    downloaded = repo.download_artifacts("model/model.pkl", str(tmp_path / "out"))
    assert Path(downloaded).read_bytes() == b"a trained forest"
    # MLflow's `delete_artifacts` uses DeleteObjects, which moto authorizes against the bucket's ARN (AWS
    # authorizes each key), so deletion is checked with the single-object call `mlflow gc` falls back to.
    key = "mlflow/1/0123abcd/artifacts/model/model.pkl"
    client("s3", stack.endpoint, stack.identity).delete_object(Bucket=stack.applied.bucket, Key=key)
    assert repo.list_artifacts("model") == []


@pytest.mark.parametrize("outside", ["s3://{bucket}/elsewhere/run", "s3://{bucket}/mlflowx/run", "s3://{other}/mlflow"])
def test_writes_outside_the_artifact_prefix_are_refused(stack: MotoStack, model_file: Path, outside: str) -> None:
    repo = stack.repo(outside.format(bucket=stack.applied.bucket, other=OTHER_BUCKET))
    with pytest.raises(S3UploadFailedError, match="AccessDenied"):
        repo.log_artifact(str(model_file))


def test_another_buckets_objects_cannot_be_read(stack: MotoStack, tmp_path: Path) -> None:
    client("s3", stack.endpoint, stack.admin).put_object(Bucket=OTHER_BUCKET, Key="mlflow/secret.txt", Body=b"x")
    repo = stack.repo(f"s3://{OTHER_BUCKET}/mlflow")
    with pytest.raises(MlflowException, match="Access Denied"):
        repo.download_artifacts("secret.txt", str(tmp_path))


def test_datasets_are_readable_but_not_writable(stack: MotoStack, model_file: Path, tmp_path: Path) -> None:
    repo = stack.repo(f"s3://{stack.applied.bucket}/datasets/airline")
    downloaded = repo.download_artifacts("flights.parquet", str(tmp_path))
    assert Path(downloaded).read_bytes() == b"PAR1 flights"
    with pytest.raises(S3UploadFailedError, match="AccessDenied"):
        repo.log_artifact(str(model_file))
    with pytest.raises(ClientError, match="AccessDenied"):
        client("s3", stack.endpoint, stack.identity).delete_object(Bucket=stack.applied.bucket, Key=DATASET_KEY)


def test_the_identity_cannot_change_the_bucket_or_its_own_rights(stack: MotoStack) -> None:
    s3 = client("s3", stack.endpoint, stack.identity)
    with pytest.raises(ClientError, match="AccessDenied"):
        s3.delete_bucket_encryption(Bucket=stack.applied.bucket)
    with pytest.raises(ClientError, match="AccessDenied"):
        s3.list_buckets()
    (user,) = stack.applied.user_keys
    with pytest.raises(ClientError, match="AccessDenied"):
        client("iam", stack.endpoint, stack.identity).put_user_policy(
            UserName=user, PolicyName="escalate", PolicyDocument=ADMIN_POLICY
        )


def test_unknown_keys_and_anonymous_requests_are_refused(stack: MotoStack, tmp_path: Path) -> None:
    repo = stack.repo(f"s3://{stack.applied.bucket}/datasets/airline", key=("unknown-not-a-key", "guess"))
    with pytest.raises(MlflowException, match="Access Key Id you provided does not exist"):
        repo.download_artifacts("flights.parquet", str(tmp_path))
    url = f"{stack.endpoint}/{stack.applied.bucket}/{DATASET_KEY}"
    assert requests.get(url, timeout=10).status_code == 403
    # An anonymous write: AWS answers 403; moto fails it with 500 (it expects an Authorization header). What a
    # user would notice either way: the request fails and nothing is stored.
    put = requests.put(f"{stack.endpoint}/{stack.applied.bucket}/mlflow/anonymous", data=b"x", timeout=10)
    assert put.status_code >= 400
    with pytest.raises(ClientError, match=r"404|Not Found"):
        client("s3", stack.endpoint, stack.admin).head_object(Bucket=stack.applied.bucket, Key="mlflow/anonymous")


@contextmanager
def tls_only_policy_applied(stack: MotoStack) -> Iterator[None]:
    """The declared bucket policy, applied for the duration of one test.

    moto does not evaluate `aws:SecureTransport` and so applies the Deny to every request; left in place it
    would block the tests above, which stand for requests made over TLS (as the AWS SDKs make by default).
    """
    s3 = client("s3", stack.endpoint, stack.admin)
    assert stack.applied.bucket_policy is not None
    s3.put_bucket_policy(Bucket=stack.applied.bucket, Policy=stack.applied.bucket_policy)
    try:
        yield
    finally:
        s3.delete_bucket_policy(Bucket=stack.applied.bucket)


def test_plain_http_requests_are_refused_by_the_bucket_policy(stack: MotoStack, model_file: Path) -> None:
    # The moto server speaks plain HTTP, so these requests are exactly the ones the policy must refuse.
    repo = stack.repo(f"s3://{stack.applied.bucket}/mlflow/1/run/artifacts")
    repo.log_artifact(str(model_file))
    with tls_only_policy_applied(stack):
        with pytest.raises(S3UploadFailedError, match=r"\(403\).*Forbidden"):
            repo.log_artifact(str(model_file))
        with pytest.raises(ClientError, match=r"403|AccessDenied"):
            client("s3", stack.endpoint, stack.identity).get_object(
                Bucket=stack.applied.bucket, Key="mlflow/1/run/artifacts/model.pkl"
            )
