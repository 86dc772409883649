"""Journey: scale out on Ray, as far as S3 goes. `pulumi up` (ray) -> bridge -> `executor=ray` -> Tune's state in S3.

The parts chained, each the real code: the Pulumi program (under mocks) declares the bucket and the identity's
IAM policy; `moto_stack` applies them to a moto server with IAM enforcement on; the bridge turns the stack's
outputs into the Ray run line (its `ray_storage=`); the trainer's executor resolves that into Tune's
`storage_path` and pyarrow `S3FileSystem` (`ray_executor.storage_uri` and `_storage`); Ray's own `StorageContext`
and the syncer functions Tune calls (validation marker, experiment-state upload, listing, download on restore,
delete) then make the S3 requests through pyarrow, signed with the identity's key.
"""

from __future__ import annotations

import pickle
import shlex
from pathlib import Path

import boto3
import pytest
from airline_hpo.cluster import bridge
from airline_hpo.search import ray_executor
from botocore.exceptions import ClientError
from moto_stack import MotoStack, running_stack
from ray.train._internal.storage import (
    StorageContext,
    _delete_fs_path,
    _download_from_fs_path,
    _list_at_fs_path,
    _upload_to_fs_path,
)

RAY = {"ray": "true", "rayImageTag": "0a1b2c3"}
PARENT_RUN = "0123456789abcdef0123456789abcdef"


@pytest.fixture(scope="module")
def stack() -> MotoStack:
    with running_stack(RAY) as applied:
        yield applied


def _ray_storage_param(stack: MotoStack, tmp_path: Path) -> str:
    outputs = dict(stack.deployment.exports)
    files = bridge.write_backend_files(outputs, tmp_path / "k8s")
    params = [a for a in shlex.split(files.ray_command or "") if a.startswith("ray_storage=")]
    assert params, "the bridge's Ray line must say where Tune keeps its state"
    return params[0].split("=", 1)[1]


def _as_identity(monkeypatch: pytest.MonkeyPatch, stack: MotoStack) -> None:
    key_id, secret = stack.identity
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", key_id)
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", secret)
    monkeypatch.setenv("AWS_EC2_METADATA_DISABLED", "true")


def test_tunes_every_storage_call_is_allowed_by_the_stacks_identity(
    stack: MotoStack, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    _as_identity(monkeypatch, stack)
    uri = ray_executor.storage_uri(_ray_storage_param(stack, tmp_path), f"s3://{stack.applied.bucket}/datasets/x")
    storage = ray_executor._storage(uri, PARENT_RUN, str(tmp_path / "local"))
    # What `tune.Tuner(..., run_config=RunConfig(storage_path=..., storage_filesystem=...))` builds first: it
    # creates the experiment directory and writes and reads back a marker file.
    context = StorageContext(storage["storage_path"], "airline-hpo", storage_filesystem=storage["storage_filesystem"])
    fs, experiment = context.storage_filesystem, context.experiment_fs_path
    # Tune ships the storage context, filesystem included, to every trial's process.
    assert pickle.loads(pickle.dumps(fs)) == fs
    assert experiment.startswith(f"{stack.applied.bucket}/ray-tune/{PARENT_RUN}/")

    # The driver's periodic sync of the experiment state and each trial's results.
    local = tmp_path / "state"
    (local / "trial_0").mkdir(parents=True)
    (local / "experiment_state-2026-12-03.json").write_text('{"trials": 1}')
    (local / "trial_0" / "result.json").write_text('{"loss": 0.3}\n')
    _upload_to_fs_path(str(local), fs, experiment)
    assert "trial_0" in _list_at_fs_path(fs, experiment)
    # Reading it back (`Tuner.restore`, `ResultGrid`), then the syncer's delete.
    restored = tmp_path / "restored"
    _download_from_fs_path(fs, experiment, str(restored))
    assert (restored / "trial_0" / "result.json").read_text() == '{"loss": 0.3}\n'
    _delete_fs_path(fs, experiment)
    assert "trial_0" not in _list_at_fs_path(fs, str(Path(experiment).parent))


@pytest.mark.parametrize("key", ["datasets/airline/flights.parquet", "backups/mlflow.dump", "ray-tune-other/x"])
def test_tunes_rights_reach_no_further_than_its_prefix(stack: MotoStack, key: str) -> None:
    """Tune's grant deletes only under its own prefix, and HeadBucket (bucket-wide ListBucket, which Arrow's own
    `create_dir` would need) stays refused. (An unprefixed ListObjectsV2 is not asserted: moto 5.2 lets it pass a
    `StringLike s3:prefix` condition that real IAM fails when the key is absent.)"""
    key_id, secret = stack.identity
    s3 = boto3.client(
        "s3",
        endpoint_url=stack.endpoint,
        region_name="us-east-1",
        aws_access_key_id=key_id,
        aws_secret_access_key=secret,
    )
    for call in (
        lambda: s3.delete_object(Bucket=stack.applied.bucket, Key=key),
        lambda: s3.head_bucket(Bucket=stack.applied.bucket),
    ):
        with pytest.raises(ClientError) as raised:
            call()
        assert raised.value.response["Error"]["Code"] in {"AccessDenied", "403"}
