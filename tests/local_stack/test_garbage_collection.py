"""``gc`` removes a deleted run for good, with its objects in the bucket, and leaves every other object alone;
a run deleted more recently than the age stays recoverable."""

from __future__ import annotations

from pathlib import Path

import pytest
from mlflow import MlflowClient
from mlflow.exceptions import MlflowException
from stack_cli import assert_one_line_error, run_cli

from local_stack import LocalStack, object_store
from tests.stack_fixtures import use_stack

pytestmark = pytest.mark.integration


def _bucket_keys(stack: LocalStack) -> set[str]:
    creds = stack.credentials
    s3 = object_store.s3_client(stack.settings, creds.s3_access_key, creds.s3_secret_key)
    pages = s3.get_paginator("list_objects_v2").paginate(Bucket=stack.settings.bucket)
    return {obj["Key"] for page in pages for obj in page.get("Contents", [])}


def _run_with_artifacts(client: MlflowClient, experiment_id: str, name: str, tmp_path: Path) -> str:
    run_id = client.create_run(experiment_id, run_name=name).info.run_id
    client.log_metric(run_id, "loss", 0.5)
    for file_name in ("a.txt", "sub/b.txt"):
        path = tmp_path / name / file_name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(f"{name} {file_name}\n")
        client.log_artifact(run_id, str(path), artifact_path=str(Path(file_name).parent).strip("."))
    client.set_terminated(run_id)
    return run_id


def test_gc_removes_the_deleted_runs_objects_and_keeps_all_others(
    day_two_stack: LocalStack, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    stack = day_two_stack
    use_stack(monkeypatch, stack)
    client = MlflowClient(stack.settings.tracking_uri)
    experiment_id = client.create_experiment("gc-test")
    doomed = _run_with_artifacts(client, experiment_id, "doomed", tmp_path)
    kept = _run_with_artifacts(client, experiment_id, "kept", tmp_path)
    run_prefix = f"{stack.settings.artifact_prefix}/{experiment_id}/{doomed}/"
    assert len({k for k in _bucket_keys(stack) if k.startswith(run_prefix)}) == 2
    client.delete_run(doomed)

    # Deleted seconds ago: the default age (30 days) keeps it, and it can still be restored.
    default_age = run_cli(stack, "gc")
    assert default_age.returncode == 0, default_age.stderr
    assert doomed not in default_age.stdout
    assert client.get_run(doomed).info.lifecycle_stage == "deleted"

    others_before = {k for k in _bucket_keys(stack) if not k.startswith(run_prefix)}
    collected = run_cli(stack, "gc", "--older-than", "0")
    assert collected.returncode == 0, collected.stderr
    assert doomed in collected.stdout and kept not in collected.stdout

    keys_after = _bucket_keys(stack)
    assert not {k for k in keys_after if k.startswith(run_prefix)}
    assert others_before <= keys_after
    assert any(k.startswith(f"{stack.settings.artifact_prefix}/{experiment_id}/{kept}/") for k in keys_after)
    with pytest.raises(MlflowException, match=r"RESOURCE_DOES_NOT_EXIST|not found"):
        client.get_run(doomed)
    assert client.get_run(kept).data.metrics == {"loss": 0.5}
    assert [f.path for f in client.list_artifacts(kept)] == ["a.txt", "sub"]


def test_gc_rejects_an_age_it_cannot_read(day_two_stack: LocalStack) -> None:
    assert_one_line_error(run_cli(day_two_stack, "gc", "--older-than", "thirty days"), "30d")
