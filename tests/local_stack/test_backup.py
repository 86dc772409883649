"""Backups proven by restoring them: fill a real stack through MLflow, back up, lose the database, restore, and
find every run, metric history, parameter, tag, artifact and registered model (alias included) as it was, with
the champion model still loading and predicting.
"""

from __future__ import annotations

from pathlib import Path

import mlflow
import numpy as np
import pytest
from mlflow import MlflowClient
from mlflow.entities import ViewType
from mlflow.tracking._tracking_service.utils import _use_tracking_uri as _tracking
from sklearn.linear_model import LogisticRegression
from stack_cli import assert_one_line_error, run_cli

from local_stack import LocalStack, StackSettings, postgres
from tests.stack_fixtures import use_stack

pytestmark = pytest.mark.integration

MODEL_NAME = "backup-test-model"
X = np.array([[0.0, 1.0], [1.0, 0.0], [0.2, 0.9], [0.9, 0.1]])
Y = np.array([0, 1, 0, 1])


def _fill(tmp_path: Path) -> None:
    """An experiment with a parent run and a nested child, metric history, params, tags, an artifact, and a
    registered model with two versions and the alias ``champion`` on the first."""
    experiment_id = MlflowClient().create_experiment("backup-test")
    for version, c in enumerate((1.0, 0.1), start=1):
        with mlflow.start_run(experiment_id=experiment_id, run_name=f"parent-{version}", tags={"team": "platform"}):
            mlflow.log_params({"C": c, "solver": "lbfgs"})
            for step in range(5):
                mlflow.log_metric("loss", 1.0 / (step + 1) + c, step=step)
            note = tmp_path / f"note-{version}.txt"
            note.write_text(f"notes of parent {version}\n")
            mlflow.log_artifact(str(note), artifact_path="notes")
            with mlflow.start_run(experiment_id=experiment_id, run_name=f"trial-{version}", nested=True):
                mlflow.log_param("trial", version)
                mlflow.log_metric("accuracy", 0.5 + version / 10)
            model = LogisticRegression(C=c).fit(X, Y)
            mlflow.sklearn.log_model(model, name="model", registered_model_name=MODEL_NAME)
    MlflowClient().set_registered_model_alias(MODEL_NAME, "champion", "1")


def _snapshot(client: MlflowClient) -> dict:
    """What a user sees through the API: runs (info, params, metrics, tags), every metric's full history, the
    artifacts' contents, logged models, registered model versions and aliases."""
    experiments = client.search_experiments(view_type=ViewType.ALL)
    ids = [exp.experiment_id for exp in experiments]
    runs = sorted(
        client.search_runs(ids, run_view_type=ViewType.ALL, max_results=1000), key=lambda run: run.info.run_id
    )
    histories = {
        (run.info.run_id, key): [
            (m.step, m.value, m.timestamp) for m in client.get_metric_history(run.info.run_id, key)
        ]
        for run in runs
        for key in run.data.metrics
    }
    artifacts = {
        run.info.run_id: sorted(f.path for f in client.list_artifacts(run.info.run_id, "notes")) for run in runs
    }
    versions = sorted(client.search_model_versions(f"name='{MODEL_NAME}'"), key=lambda v: int(v.version))
    return {
        "experiments": sorted((e.experiment_id, e.name, e.lifecycle_stage, e.artifact_location) for e in experiments),
        "runs": [run.to_dictionary() for run in runs],
        "histories": histories,
        "artifacts": artifacts,
        "logged_models": sorted(
            (m.model_id, m.name, m.source_run_id, m.artifact_location)
            for m in client.search_logged_models(experiment_ids=ids)
        ),
        "versions": [(v.version, v.run_id, v.source, v.status, v.model_id, v.creation_timestamp) for v in versions],
        "aliases": client.get_registered_model(MODEL_NAME).aliases,
    }


def test_backup_then_restore_brings_back_everything(
    day_two_stack: LocalStack, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    stack = day_two_stack
    use_stack(monkeypatch, stack)
    uri = stack.settings.tracking_uri
    with _tracking(uri):
        _fill(tmp_path)
        client = MlflowClient(uri)
        before = _snapshot(client)
        prediction = mlflow.pyfunc.load_model(f"models:/{MODEL_NAME}@champion").predict(X)

    backed_up = run_cli(stack, "backup")
    assert backed_up.returncode == 0, backed_up.stderr
    key = backed_up.stdout.strip().splitlines()[-1]
    assert key.startswith("backups/mlflow-") and key.endswith("Z.dump")
    creds = stack.credentials
    saved = stack.settings.state_dir / key  # apart from the bucket, owner-only
    assert saved.read_bytes().startswith(b"PGDMP")
    assert saved.stat().st_mode & 0o777 == 0o600 and saved.parent.stat().st_mode & 0o777 == 0o700

    # Work after the backup is what a restore gives up: it must be gone afterwards.
    late_run = client.create_run(before["runs"][0]["info"]["experiment_id"], run_name="after-backup").info.run_id
    # Lose the database entirely (the server is still running and now has nothing to serve).
    postgres.drop_database(stack.settings, creds, postgres.MLFLOW_DATABASE)

    restored = run_cli(stack, "restore", key)
    assert restored.returncode == 0, restored.stderr
    assert f"restored {key}" in restored.stderr

    client = MlflowClient(uri)
    after = _snapshot(client)
    assert after == before
    assert len(after["runs"]) == 4 and len(after["versions"]) == 2
    assert after["aliases"] == {"champion": "1"}
    assert late_run not in {run["info"]["run_id"] for run in after["runs"]}
    with _tracking(uri):
        champion = mlflow.pyfunc.load_model(f"models:/{MODEL_NAME}@champion")
        np.testing.assert_array_equal(champion.predict(X), prediction)
        parent = next(r for r in after["runs"] if r["info"]["run_name"] == "parent-1")["info"]["run_id"]
        note = mlflow.artifacts.download_artifacts(f"runs:/{parent}/notes/note-1.txt", dst_path=str(tmp_path / "dl"))
        assert Path(note).read_text() == "notes of parent 1\n"
    # The server serves new work on the restored database.
    assert client.create_run(before["runs"][0]["info"]["experiment_id"]).info.status == "RUNNING"


def test_restore_refuses_bad_backups_and_keeps_the_data(
    day_two_stack: LocalStack, monkeypatch: pytest.MonkeyPatch
) -> None:
    stack = day_two_stack
    use_stack(monkeypatch, stack)
    client = MlflowClient(stack.settings.tracking_uri)
    experiment_id = client.create_experiment("kept-through-bad-restores")
    bad = stack.settings.backup_dir / "not-a-dump.dump"
    bad.parent.mkdir(mode=0o700, exist_ok=True)
    bad.write_bytes(b"hello")

    assert_one_line_error(run_cli(stack, "restore", "backups/mlflow-19700101T000000.000000Z.dump"), "no backup")
    assert_one_line_error(run_cli(stack, "restore", "backups/not-a-dump.dump"), "not a pg_dump")
    assert client.get_experiment(experiment_id).name == "kept-through-bad-restores"
    listed = run_cli(stack, "backups")
    assert listed.returncode == 0 and "backups/not-a-dump.dump" in listed.stdout.splitlines()
    assert str(stack.settings.backup_dir) in listed.stderr
    assert_one_line_error(run_cli(stack, "restore", "backups/../credentials.json"), "not a backup key")
    bad.unlink()


def test_backup_of_a_stopped_stack_says_to_start_it(tmp_path: Path) -> None:
    stopped = LocalStack(StackSettings(state_dir=tmp_path / "never-started"))
    for command in (["backup"], ["restore", "backups/x.dump"], ["gc"], ["upgrade-check"], ["upgrade-db"]):
        assert_one_line_error(run_cli(stopped, *command), "not running", "make up")
    listed = run_cli(stopped, "backups")  # backups are files: listing them needs no running service
    assert listed.returncode == 0 and listed.stdout == "" and "0 backup(s)" in listed.stderr
    assert not stopped.settings.state_dir.exists()  # nothing half-created for a stack that never ran
