"""Prove the data path of a running stack: a run with a metric and an artifact, read back, found in the bucket.

This is what "the stack works" means to a user: the tracking server writes to PostgreSQL, and an artifact
logged through the server's proxy lands as an object in the S3 bucket.
"""

from __future__ import annotations

import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

from local_stack import tracking_server
from local_stack.object_store import s3_client
from local_stack.stack import LocalStack


@dataclass(frozen=True)
class SmokeResult:
    experiment_id: str
    run_id: str
    metric: float
    artifact_text: str
    object_key: str


def run_smoke_check(stack: LocalStack, experiment_name: str = "local-stack-smoke-check") -> SmokeResult:
    """Log and read back as the stack's admin (MLflow asks every client for its login)."""
    with tracking_server.logged_in(stack.credentials):
        return _check(stack, experiment_name)


def _check(stack: LocalStack, experiment_name: str) -> SmokeResult:
    from mlflow import MlflowClient

    client = MlflowClient(tracking_uri=stack.settings.tracking_uri)
    experiment = client.get_experiment_by_name(experiment_name)
    experiment_id = experiment.experiment_id if experiment else client.create_experiment(experiment_name)
    run = client.create_run(experiment_id, run_name=f"smoke-{time.strftime('%H%M%S')}")
    run_id = run.info.run_id
    client.log_metric(run_id, "answer", 42.0)
    with tempfile.TemporaryDirectory() as tmp:
        (Path(tmp) / "back").mkdir()
        note = Path(tmp) / "hello.txt"
        note.write_text(f"written by the local stack smoke check, run {run_id}\n")
        client.log_artifact(run_id, str(note))
        client.set_terminated(run_id)
        downloaded = Path(client.download_artifacts(run_id, "hello.txt", dst_path=str(Path(tmp) / "back")))
        artifact_text = downloaded.read_text()
    metric = client.get_run(run_id).data.metrics["answer"]

    creds = stack.credentials
    s3 = s3_client(stack.settings, creds.s3_access_key, creds.s3_secret_key)
    listing = s3.list_objects_v2(Bucket=stack.settings.bucket, Prefix=stack.settings.artifact_prefix)
    keys = [obj["Key"] for obj in listing.get("Contents", []) if run_id in obj["Key"]]
    if not keys:
        raise RuntimeError(f"artifact of run {run_id} not found in s3://{stack.settings.bucket}")
    return SmokeResult(experiment_id, run_id, metric, artifact_text, keys[0])
