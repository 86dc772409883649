"""The local stack as a whole: the same three services the cloud stack deploys, as processes on this machine.

``up`` is idempotent (a running service is left alone), checks every public port before starting anything, and
stops what it started if a later service fails, so a failed ``up`` leaves nothing half-started behind.
"""

from __future__ import annotations

import shutil
import signal
from collections.abc import Callable
from dataclasses import dataclass

from local_stack import disk, object_store, postgres, tracking_server
from local_stack.credentials import StackCredentials, load_or_create
from local_stack.errors import StackError
from local_stack.processes import ServiceProcess, port_in_use
from local_stack.settings import PORT_OPTIONS, StackSettings

#: Files only a stack's state directory holds: `down --wipe` deletes nothing else (say `--state-dir ~` by mistake).
STATE_MARKERS = ("stack.json", "credentials.json")

#: What `up` and `status` say about an MLflow server that runs without the login (started by an older version).
OPEN_SERVER = (
    "the MLflow server (pid {pid}) runs without a login (started before auth became the default), so anyone on this "
    'machine can read and delete its runs; fix: `make down`, then `make up` (clients then need `eval "$(make env)"`)'
)

Starter = Callable[[StackSettings, StackCredentials, ServiceProcess], None]


@dataclass(frozen=True)
class Service:
    name: str
    port_field: str
    start: Starter
    stop_signal: signal.Signals = signal.SIGTERM
    stop_timeout: float = 15.0


#: Start order is dependency order: MLflow needs both the database and the bucket.
SERVICES: tuple[Service, ...] = (
    Service(postgres.SERVICE, "postgres_port", postgres.start, signal.SIGINT),
    # SeaweedFS takes over 20 s to shut down gracefully; its volumes and filer log are crash-safe, so 5 s will do.
    Service(object_store.SERVICE, "s3_port", object_store.start, stop_timeout=5.0),
    Service(tracking_server.SERVICE, "mlflow_port", tracking_server.start),
)


class LocalStack:
    """One local stack, identified by its state directory."""

    def __init__(self, settings: StackSettings | None = None) -> None:
        self.settings = settings or StackSettings()

    def process(self, service: Service) -> ServiceProcess:
        return ServiceProcess(
            service.name,
            self.settings.pid_file(service.name),
            self.settings.log_file(service.name),
            service.stop_signal,
            service.stop_timeout,
        )

    @property
    def credentials(self) -> StackCredentials:
        data = (postgres.data_dir(self.settings), object_store.data_dir(self.settings))
        return load_or_create(self.settings.secrets_file, data_dirs=data)

    def status(self) -> dict[str, int | None]:
        """PID of each running service's leader, None for a stopped one; reads only (see ``health.inspect``)."""
        return {svc.name: self.process(svc).inspect().pid for svc in SERVICES}

    def up(self, log: Callable[[str], None] = print) -> None:
        """Start whatever is not running yet and wait until each service answers its health check.

        A service whose leader died is restarted: the orphans it left (holding its port) are stopped first.
        """
        running = {svc.name: self.process(svc).running_pid() for svc in SERVICES}
        self._check_server_locked(running)
        to_start = [svc for svc in SERVICES if running[svc.name] is None]
        # Every check before the first write: a refused `up` leaves no state directory behind.
        self._check_ports(to_start)
        disk.require_room(self.settings.state_dir)
        # Owner-only from the start: it holds the credentials, the data and the logs.
        self.settings.state_dir.mkdir(mode=0o700, parents=True, exist_ok=True)
        creds = self.credentials  # before anything is saved: a damaged or lost credentials file stops `up` here
        if to_start:
            self.settings.save()
        started: list[Service] = []
        try:
            for svc in to_start:
                log(f"starting {svc.name} on port {getattr(self.settings, svc.port_field)} ...")
                started.append(svc)
                svc.start(self.settings, creds, self.process(svc))
        except BaseException:
            for svc in reversed(started):
                self.process(svc).stop()
            raise
        for svc in SERVICES:
            if svc not in to_start:
                log(f"{svc.name} already running (pid {running[svc.name]})")
                if svc.name == object_store.SERVICE:
                    # A running store is checked too: its bucket may have gone, and `up` promises a usable one.
                    object_store.wait_until_usable(self.settings, creds, self.process(svc))

    def down(self, wipe: bool = False) -> list[str]:
        """Stop the services this stack started (reverse order); with ``wipe``, delete its data too.

        The model endpoint (``make serve``) goes first: it is the stack's client."""
        from local_stack import model_serving

        state_dir = self.settings.state_dir
        if wipe and state_dir.is_dir() and not any((state_dir / name).exists() for name in STATE_MARKERS):
            raise StackError(
                f"{state_dir} holds no {' or '.join(STATE_MARKERS)}, so it is not a local stack's state directory; "
                "nothing was stopped or deleted (check --state-dir or LOCAL_STACK_DIR)"
            )
        store = next(svc for svc in SERVICES if svc.name == object_store.SERVICE)
        store_pid = self.process(store).inspect().pid
        leftovers = object_store.grpc_sockets(store_pid) if store_pid else []
        stopped = [model_serving.SERVICE] if model_serving.stop(self.settings) else []
        stopped += [svc.name for svc in reversed(SERVICES) if self.process(svc).stop()]
        object_store.remove_sockets(leftovers)
        if wipe and state_dir.exists():
            shutil.rmtree(state_dir)
        return stopped

    def client_env(self) -> dict[str, str]:
        """What a client (the trainer, a notebook, `mlflow` CLI) needs to use this stack."""
        creds = self.credentials
        return {
            "MLFLOW_TRACKING_URI": self.settings.tracking_uri,
            "MLFLOW_S3_ENDPOINT_URL": self.settings.s3_endpoint,
            "AWS_ACCESS_KEY_ID": creds.s3_access_key,
            "AWS_SECRET_ACCESS_KEY": creds.s3_secret_key,
            "AWS_DEFAULT_REGION": object_store.REGION,
            "ARTIFACT_BUCKET": self.settings.bucket,
            # MLflow 3.17's telemetry thread raced the client under load (KeyError, not retried): off, as on the
            # server.
            "MLFLOW_DISABLE_TELEMETRY": "true",
            **tracking_server.client_credentials(creds),
            # Where the stack writes: the trainer names a full disk there instead of "Read timed out" (a server
            # whose database cannot write hangs), and `make status` in another directory finds this stack.
            "LOCAL_STACK_DIR": str(self.settings.state_dir),
        }

    def _check_server_locked(self, running: dict[str, int | None]) -> None:
        """A running server keeps the mode it started with: one started before auth became the default (or with the
        ``--auth`` option left out) answers anyone, and ``up`` must not call that stack up."""
        pid = running[tracking_server.SERVICE]
        if pid is not None and not tracking_server.requires_login(pid):
            raise StackError(OPEN_SERVER.format(pid=pid))

    def _check_ports(self, services: list[Service]) -> None:
        for svc in services:
            port = getattr(self.settings, svc.port_field)
            if port_in_use(self.settings.host, port):
                option, env_var = PORT_OPTIONS[svc.port_field]
                raise StackError(
                    f"port {port} for {svc.name} is already in use; choose another with {option} or {env_var}=<port>"
                )
