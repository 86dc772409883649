"""What each service of the stack really does, found without changing anything: one line per service, with the fix.

A PID file alone does not tell the truth: MLflow's leader can die while its uvicorn workers keep answering on
its port (nothing would restart them), a crashed service leaves a stale file, another program can hold a port.
``status`` prints these lines, ``env`` refuses to print a client environment unless every service answers.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable
from dataclasses import dataclass

import psutil

from local_stack import object_store, postgres, tracking_server
from local_stack.credentials import StackCredentials, load_or_create
from local_stack.processes import port_in_use
from local_stack.settings import PORT_OPTIONS, StackSettings
from local_stack.stack import OPEN_SERVER, SERVICES, LocalStack, Service

#: Per service: what a user gets from it, checked with the stack's credentials (read-only, a few seconds at most).
Probe = Callable[[StackSettings, StackCredentials], None]


def _postgres_answers(settings: StackSettings, creds: StackCredentials) -> None:
    conn = postgres.connect(settings, creds)
    with conn.cursor() as cur:
        cur.execute("SELECT 1")
    conn.close()


def _mlflow_answers(settings: StackSettings, creds: StackCredentials) -> None:
    if not tracking_server.is_ready(settings.tracking_uri, tracking_server.client_credentials(creds)):
        raise RuntimeError("its API did not return the Default experiment")


PROBES: dict[str, tuple[Probe, str]] = {
    postgres.SERVICE: (_postgres_answers, "accepting connections"),
    object_store.SERVICE: (object_store.bucket_reachable, "bucket readable with the stack's keys (objects read back)"),
    tracking_server.SERVICE: (_mlflow_answers, "API answering from the database"),
}


@dataclass(frozen=True)
class ServiceHealth:
    name: str
    ok: bool
    #: The whole story in one line: what runs, what answers, and the command that fixes it when it is not ok.
    line: str


def _short(exc: BaseException) -> str:
    text = (str(exc).strip().splitlines() or [type(exc).__name__])[0]
    return text if len(text) <= 120 else text[:117] + "..."


def _port_holder(port: int) -> str:
    """Who listens on ``port``, as ``pid N (name)``, or a plain phrase when the process table does not say."""
    with contextlib.suppress(psutil.Error, OSError):
        for conn in psutil.net_connections(kind="tcp"):
            if conn.status == psutil.CONN_LISTEN and conn.laddr and conn.laddr.port == port and conn.pid:
                with contextlib.suppress(psutil.Error):
                    return f"pid {conn.pid} ({psutil.Process(conn.pid).name()})"
                return f"pid {conn.pid}"
    return "another program"


def _check(stack: LocalStack, svc: Service, creds: StackCredentials | None) -> ServiceHealth:
    settings = stack.settings
    port = getattr(settings, svc.port_field)
    state = stack.process(svc).inspect()
    probe, promise = PROBES[svc.name]
    log = settings.log_file(svc.name)
    if state.pid is not None and creds is not None:
        try:
            probe(settings, creds)
        except object_store.BucketUnreadable as exc:
            return ServiceHealth(
                svc.name,
                False,
                f"BUCKET UNREADABLE: pid {state.pid} answers on port {port}, but {exc}; artifacts written before "
                f"are gone; database backups are kept apart (in {settings.backup_dir}): `make backups` lists them",
            )
        except Exception as exc:
            return ServiceHealth(
                svc.name,
                False,
                f"NOT ANSWERING: pid {state.pid} runs but port {port} fails ({_short(exc)}); see {log}; "
                f"fix: `make down`, then `make up`",
            )
        if state.damaged:
            return ServiceHealth(
                svc.name,
                False,
                f"DAMAGED PID FILE: {stack.process(svc).pid_file} cannot be read; pid {state.pid} was found by its "
                f"mark and answers on port {port}; fix: `make up` rewrites the file (or `make down` stops it)",
            )
        if svc.name == tracking_server.SERVICE and not tracking_server.requires_login(state.pid):
            return ServiceHealth(svc.name, False, "OPEN: " + OPEN_SERVER.format(pid=state.pid))
        if svc.name == object_store.SERVICE and not object_store.is_locked(state.pid):
            return ServiceHealth(
                svc.name,
                False,
                f"UNLOCKED: pid {state.pid} was started by an older version without client certificates, so its "
                f"internal ports take requests without credentials; fix: `make down`, then `make up`",
            )
        return ServiceHealth(svc.name, True, f"running, pid {state.pid}, port {port}: {promise}")
    if state.orphans:
        pids = ", ".join(map(str, state.orphans))
        held = f", still holding port {port}" if port_in_use(settings.host, port) else ""
        return ServiceHealth(
            svc.name,
            False,
            f"HALF-DEAD: its main process (pid {state.recorded_pid}) died; {len(state.orphans)} orphaned "
            f"process(es) ({pids}) live on{held} and nothing restarts them; see {log}; fix: `make up` stops "
            f"them and starts {svc.name} again",
        )
    option, env_var = PORT_OPTIONS[svc.port_field]
    if port_in_use(settings.host, port):
        return ServiceHealth(
            svc.name,
            False,
            f"STOPPED, and port {port} is held by {_port_holder(port)}: stop that, or choose another port "
            f"with {option} or {env_var}=<port>, then `make up`",
        )
    if state.damaged:
        return ServiceHealth(
            svc.name,
            False,
            f"STOPPED, with a damaged PID file {stack.process(svc).pid_file} and no process of it left; "
            f"fix: `make up` replaces it",
        )
    if state.stale:
        return ServiceHealth(
            svc.name,
            False,
            f"STOPPED: pid {state.recorded_pid} of its PID file is gone (crashed or killed); see {log}; fix: `make up`",
        )
    return ServiceHealth(svc.name, False, "stopped; fix: `make up`")


def inspect(stack: LocalStack) -> list[ServiceHealth]:
    """The health of every service, in start order; writes nothing (no PID file, no credentials, no process)."""
    running = any(stack.process(svc).inspect().pid for svc in SERVICES)
    creds = None
    if running:
        data = (postgres.data_dir(stack.settings), object_store.data_dir(stack.settings))
        creds = load_or_create(stack.settings.secrets_file, data_dirs=data, write=False)
    return [_check(stack, svc, creds) for svc in SERVICES]
