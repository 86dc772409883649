"""Rehearse an MLflow upgrade on a copy of the data: restore a backup into a scratch database, run
``mlflow db upgrade`` on it, serve it, and read every run back, before the live database is touched.

``mlflow db upgrade`` is not guaranteed to be transactional, and a server refuses to start on an out-of-date
schema, so the migration is proven on a copy first. ``python`` names the interpreter of the MLflow to move to
(a second virtual environment with the newer ``mlflow[auth]`` and ``psycopg2-binary``); by default it is this one.
The rehearsal's server asks for the stack's admin login like the live one (its auth config, pointing at the
scratch database, is written to a temporary directory).
The scratch database and server are removed afterwards, whatever happened.

``upgrade_live`` then does it for real, once the venv holds the new MLflow: a fresh backup first (the way back),
the server stopped (an old server must not write to a new schema), ``mlflow db upgrade``, the server started.
"""

from __future__ import annotations

import json
import os
import sys
import tempfile
import time
import urllib.request
from dataclasses import dataclass
from pathlib import Path

from local_stack import backup, object_store, postgres, tracking_server
from local_stack.errors import StackError
from local_stack.mlflow_cli import BACKEND_URI, run_mlflow
from local_stack.processes import ServiceProcess, free_ports
from local_stack.stack import SERVICES, LocalStack


@dataclass(frozen=True)
class UpgradeReport:
    backup_key: str
    mlflow_version: str
    runs_in_backup: int
    runs_served: int
    seconds: float


def _count_runs(stack: LocalStack, database: str) -> int:
    conn = postgres.connect(stack.settings, stack.credentials, database)
    try:
        with conn.cursor() as cur:
            cur.execute("SELECT count(*) FROM runs")
            return int(cur.fetchone()[0])
    finally:
        conn.close()


def _api(base_url: str, auth: dict[str, str], path: str, body: dict | None = None) -> dict:
    data = json.dumps(body).encode() if body is not None else None
    request = urllib.request.Request(
        f"{base_url}/api/2.0/mlflow/{path}", data=data, headers={"Content-Type": "application/json", **auth}
    )
    with urllib.request.urlopen(request, timeout=30) as resp:
        return json.load(resp)


def _paged(base_url: str, auth: dict[str, str], path: str, body: dict, items: str) -> list[dict]:
    found: list[dict] = []
    token = None
    while True:
        page = _api(base_url, auth, path, {**body, **({"page_token": token} if token else {})})
        found.extend(page.get(items, []))
        token = page.get("next_page_token")
        if not token:
            return found


def _runs_served(base_url: str, auth: dict[str, str]) -> int:
    """Every run (active and deleted) of every experiment, read through the upgraded server's REST API (as the
    admin: the rehearsal's server asks for the same login as the live one)."""
    experiments = _paged(base_url, auth, "experiments/search", {"max_results": 1000, "view_type": "ALL"}, "experiments")
    ids = [exp["experiment_id"] for exp in experiments]
    runs = 0
    for start in range(0, len(ids), 100):  # the API takes at most 100 experiment ids per search
        body = {"experiment_ids": ids[start : start + 100], "max_results": 1000, "run_view_type": "ALL"}
        runs += len(_paged(base_url, auth, "runs/search", body, "runs"))
    return runs


def _server_argv(stack: LocalStack, port: int, python: str) -> list[str]:
    """The stack's server command on another port and interpreter, without the metrics exporter (its package
    need not be installed beside the MLflow under test)."""
    argv = tracking_server.server_argv(stack.settings, port)
    i = argv.index("--expose-prometheus")
    return [python, *argv[1:i], *argv[i + 2 :]]


def check_upgrade(stack: LocalStack, key: str | None = None, python: str = sys.executable, log=print) -> UpgradeReport:
    """Restore ``key`` (default: the latest backup) into a scratch database, upgrade, serve and read it back."""
    started = time.monotonic()
    backup.require_running(stack, postgres.SERVICE, object_store.SERVICE)
    # The interpreter next: a wrong path must fail before anything is restored.
    version = run_mlflow(["--version"], {"PATH": os.environ.get("PATH", "")}, python).stdout.strip().split()[-1]
    key = key or backup.latest_backup(stack)
    log(f"restoring s3://{stack.settings.bucket}/{key} into a scratch database ...")
    scratch = backup.restore_to_scratch(stack, key, "mlflow_upgrade_check")
    try:
        runs_in_backup = _count_runs(stack, scratch)
        (port,) = free_ports(1)
        base_url = f"http://{stack.settings.host}:{port}"
        credentials = tracking_server.client_credentials(stack.credentials)
        with tempfile.TemporaryDirectory(prefix="mlflow-upgrade-check-") as tmp:
            env = tracking_server.scratch_server_env(stack.settings, stack.credentials, scratch, Path(tmp))
            log(f"running `mlflow db upgrade` (MLflow {version}) on {scratch!r} ...")
            run_mlflow(["db", "upgrade", BACKEND_URI], env, python)
            server = ServiceProcess("mlflow-upgrade-check", Path(tmp) / "server.pid", Path(tmp) / "server.log")
            server.start(_server_argv(stack, port, python), env=env)
            try:
                log(f"starting MLflow {version} on it at {base_url} ...")
                server.wait_until(
                    lambda: tracking_server.is_ready(base_url, credentials), timeout=180, what=f"{base_url}"
                )
                runs_served = _runs_served(base_url, tracking_server.auth_header(credentials))
            finally:
                server.stop()
    finally:
        postgres.drop_database(stack.settings, stack.credentials, scratch)
    if runs_served != runs_in_backup:
        raise StackError(
            f"MLflow {version} served {runs_served} runs from the upgraded copy of {key}, but the backup holds "
            f"{runs_in_backup}; do not upgrade the live database"
        )
    return UpgradeReport(key, version, runs_in_backup, runs_served, time.monotonic() - started)


def upgrade_live(stack: LocalStack, log=print) -> str:
    """Back up, stop the MLflow server, ``mlflow db upgrade`` the live database, start the server; return the key
    of the backup taken just before (restore it to go back)."""
    backup.require_running(stack, postgres.SERVICE, object_store.SERVICE, tracking_server.SERVICE)
    key = backup.create_backup(stack, log=log)
    process = stack.process(next(svc for svc in SERVICES if svc.name == tracking_server.SERVICE))
    log("stopping the MLflow server ...")
    process.stop()
    log("running `mlflow db upgrade` on the live database ...")
    try:
        run_mlflow(["db", "upgrade", BACKEND_URI], tracking_server.server_env(stack.settings, stack.credentials))
    except StackError as exc:
        raise StackError(
            f"{exc}\nthe MLflow server stays stopped; go back with the previous MLflow and "
            f"`make restore BACKUP={key}`, or fix the cause and run `make upgrade-db` again"
        ) from None
    log("starting the MLflow server ...")
    tracking_server.start(stack.settings, stack.credentials, process)
    return key
