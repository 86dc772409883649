"""The upgrade rehearsal: the latest backup restored into a scratch database, ``mlflow db upgrade`` run on it, a
server started on it that serves every run of the backup; the live database is untouched and the scratch
database is gone afterwards."""

from __future__ import annotations

import pytest
from mlflow import MlflowClient
from mlflow.entities import ViewType
from stack_cli import assert_one_line_error, run_cli

from local_stack import LocalStack, postgres
from tests.stack_fixtures import use_stack

pytestmark = pytest.mark.integration


def _scratch_databases(stack: LocalStack) -> list[str]:
    conn = postgres.connect(stack.settings, stack.credentials)
    try:
        with conn.cursor() as cur:
            cur.execute("SELECT datname FROM pg_database WHERE datname LIKE 'mlflow\\_%'")
            return [row[0] for row in cur.fetchall()]
    finally:
        conn.close()


def _all_runs(client: MlflowClient) -> list[str]:
    ids = [e.experiment_id for e in client.search_experiments(view_type=ViewType.ALL)]
    return [r.info.run_id for r in client.search_runs(ids, run_view_type=ViewType.ALL, max_results=1000)]


def test_upgrade_check_serves_every_run_of_the_latest_backup(
    day_two_stack: LocalStack, monkeypatch: pytest.MonkeyPatch
) -> None:
    stack = day_two_stack
    use_stack(monkeypatch, stack)
    client = MlflowClient(stack.settings.tracking_uri)
    experiment_id = client.create_experiment("upgrade-check")
    for name in ("first", "second"):
        client.log_param(client.create_run(experiment_id, run_name=name).info.run_id, "name", name)
    backed_up = run_cli(stack, "backup")
    assert backed_up.returncode == 0, backed_up.stderr
    key = backed_up.stdout.strip().splitlines()[-1]
    runs_in_backup = len(_all_runs(client))
    late = client.create_run(experiment_id, run_name="after-backup").info.run_id

    checked = run_cli(stack, "upgrade-check")
    assert checked.returncode == 0, checked.stderr
    assert f"copy of {key}" in checked.stdout
    assert f"served all {runs_in_backup} runs" in checked.stdout
    assert "db upgrade" in checked.stderr
    assert _scratch_databases(stack) == []
    assert client.get_run(late).info.run_name == "after-backup"  # the live database was not touched


def test_upgrade_check_with_a_missing_interpreter_cleans_up(day_two_stack: LocalStack) -> None:
    result = run_cli(day_two_stack, "upgrade-check", "--python", "/nonexistent/bin/python")
    assert_one_line_error(result, "/nonexistent/bin/python")
    assert _scratch_databases(day_two_stack) == []


def test_upgrade_db_backs_up_first_and_serves_the_same_runs_after(
    day_two_stack: LocalStack, monkeypatch: pytest.MonkeyPatch
) -> None:
    stack = day_two_stack
    use_stack(monkeypatch, stack)
    client = MlflowClient(stack.settings.tracking_uri)
    runs_before = sorted(_all_runs(client))
    upgraded = run_cli(stack, "upgrade-db")
    assert upgraded.returncode == 0, upgraded.stderr
    key = upgraded.stdout.split("the backup taken before is ")[1].split()[0]
    assert key in run_cli(stack, "backups").stdout.splitlines()
    assert sorted(_all_runs(MlflowClient(stack.settings.tracking_uri))) == runs_before
