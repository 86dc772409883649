"""The backup CronJob's declared upload, run with the stack's S3 identity against the AWS half applied to moto
(IAM enforcement on): the dump lands under `backups/`, and the identity can do nothing else there.

The identity is shared with the tracking server and the training Jobs, so "nothing else" matters: a training
container must not read the database through a dump, nor delete the backups. (moto 5.2.5 does not evaluate the
`s3:prefix` condition on ListBucket, see test_aws_moto.py; listing is therefore not judged here.)
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from botocore.exceptions import ClientError
from declared_pods import Swaps, cron_pod_spec, declared_secrets, prepare, run_to_completion
from moto_stack import MotoStack, client, running_stack

MOCK_KEY_ID, MOCK_SECRET = "AKIDEXAMPLEMOCKKEY", "mock-secret-access-key-value"  # mock_harness's generated key


@pytest.fixture(scope="module")
def stack() -> Iterator[MotoStack]:
    with running_stack({}) as applied:
        yield applied


def _upload(stack: MotoStack, root: Path, archive: bytes):
    """Run the declared upload container with the declared S3 Secret holding the identity's moto key."""
    pod = cron_pod_spec(stack.deployment, "rapids-mlflow-db-backup")
    (container,) = pod["containers"]
    key_id, secret = stack.identity
    swaps = Swaps().add(MOCK_KEY_ID, key_id).add(MOCK_SECRET, secret)
    prepared = prepare(
        pod, container, declared_secrets(stack.deployment), root, swaps, {"AWS_ENDPOINT_URL_S3": stack.endpoint}
    )
    (root / "backup").mkdir(parents=True, exist_ok=True)
    (root / "backup" / "mlflow.dump").write_bytes(archive)  # what the pg_dump init container leaves behind
    return run_to_completion(prepared, cwd=root, timeout=120)


def test_the_declared_upload_writes_the_dump_under_backups(stack: MotoStack, tmp_path: Path) -> None:
    result = _upload(stack, tmp_path, b"PGDMP\x01\x10 a custom-format archive")
    assert result.returncode == 0, result.stderr
    uri = result.stdout.strip().splitlines()[-1]
    assert uri.startswith(f"s3://{stack.applied.bucket}/backups/rapids-mlflow-") and uri.endswith(".dump")
    key = uri.split("/", 3)[3]
    body = client("s3", stack.endpoint, stack.admin).get_object(Bucket=stack.applied.bucket, Key=key)["Body"].read()
    assert body.startswith(b"PGDMP")


def test_the_upload_refuses_a_file_that_is_no_dump(stack: MotoStack, tmp_path: Path) -> None:
    before = client("s3", stack.endpoint, stack.admin).list_objects_v2(Bucket=stack.applied.bucket, Prefix="backups/")
    result = _upload(stack, tmp_path, b"")  # pg_dump died before writing: nothing must be stored as a backup
    assert result.returncode != 0 and "not a pg_dump custom-format archive" in result.stderr
    after = client("s3", stack.endpoint, stack.admin).list_objects_v2(Bucket=stack.applied.bucket, Prefix="backups/")
    assert after.get("KeyCount") == before.get("KeyCount")


def test_the_identity_may_only_write_backups(stack: MotoStack) -> None:
    admin, identity = client("s3", stack.endpoint, stack.admin), client("s3", stack.endpoint, stack.identity)
    bucket = stack.applied.bucket
    admin.put_object(Bucket=bucket, Key="backups/earlier.dump", Body=b"PGDMP earlier")
    identity.put_object(Bucket=bucket, Key="backups/next.dump", Body=b"PGDMP next")
    with pytest.raises(ClientError, match="AccessDenied"):
        identity.get_object(Bucket=bucket, Key="backups/earlier.dump")
    with pytest.raises(ClientError, match="AccessDenied"):
        identity.delete_object(Bucket=bucket, Key="backups/earlier.dump")
    with pytest.raises(ClientError, match="AccessDenied"):
        identity.put_object(Bucket=bucket, Key="backupsx/sideways.dump", Body=b"x")
    assert admin.get_object(Bucket=bucket, Key="backups/earlier.dump")["Body"].read() == b"PGDMP earlier"


def test_the_lifecycle_rule_expires_backups_and_keeps_the_versions_rule(stack: MotoStack) -> None:
    rules = client("s3", stack.endpoint, stack.admin).get_bucket_lifecycle_configuration(Bucket=stack.applied.bucket)
    by_id = {r["ID"]: r for r in rules["Rules"]}
    assert by_id["expire-database-backups"]["Filter"]["Prefix"] == "backups/"
    assert by_id["expire-database-backups"]["Expiration"]["Days"] == 30
    assert by_id["expire-noncurrent-versions"]["NoncurrentVersionExpiration"]["NoncurrentDays"] == 30
