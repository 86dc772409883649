"""Where the local stack keeps its state and which ports it uses.

Every value has a default and can be overridden by a CLI option or an environment variable, so several stacks
(a developer's and the test suite's) can run side by side on one machine.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass, field
from pathlib import Path

from local_stack.errors import StackError
from local_stack.files import write_atomically

REPO_ROOT = Path(__file__).resolve().parent.parent

#: Option and environment variable a user changes for each public port; errors name them.
PORT_OPTIONS = {
    "postgres_port": ("--postgres-port", "LOCAL_STACK_POSTGRES_PORT"),
    "s3_port": ("--s3-port", "LOCAL_STACK_S3_PORT"),
    "mlflow_port": ("--mlflow-port", "LOCAL_STACK_MLFLOW_PORT"),
}


DEFAULT_PORTS = {"postgres_port": 54329, "s3_port": 8333, "mlflow_port": 5000}

#: Keys older versions saved in ``stack.json`` that mean nothing now (``auth``: MLflow's login could be off).
LEGACY_FIELDS = ("auth",)


def _port_fix(field_name: str) -> str:
    option, env_var = PORT_OPTIONS[field_name]
    return f"choose another with {option} or {env_var}=<port> (1-65535, e.g. {DEFAULT_PORTS[field_name]})"


def parse_port(field_name: str, raw: object, source: str) -> int:
    """``raw`` as a port number, or one line naming ``source`` (an option, a variable, a file) and the fix.

    Port 0 would let the OS pick a port nobody knows (a 131 s wait for a health check that cannot pass), and a
    port outside 1-65535 cannot be bound at all.
    """
    service = field_name.removesuffix("_port")
    if isinstance(raw, bool) or not isinstance(raw, (int, str)):
        raise StackError(f"{source}: {raw!r} is not a port number for {service}; {_port_fix(field_name)}")
    try:
        port = int(raw)
    except ValueError:
        raise StackError(f"{source}={raw!r} is not a port number; {_port_fix(field_name)}") from None
    if not 1 <= port <= 65535:
        raise StackError(f"{source}={raw!r}: port {port} for {service} is not in 1-65535; {_port_fix(field_name)}")
    return port


def _env_int(field_name: str) -> int:
    _option, env_var = PORT_OPTIONS[field_name]
    raw = os.environ.get(env_var)
    if raw is None or raw == "":
        return DEFAULT_PORTS[field_name]
    return parse_port(field_name, raw, env_var)


def _env_ports() -> dict[str, int]:
    """Ports set in the environment; they win over what the last ``up`` saved, as an option would."""
    return {
        field_name: _env_int(field_name)
        for field_name, (_option, env_var) in PORT_OPTIONS.items()
        if os.environ.get(env_var)
    }


def _read_saved(path: Path) -> dict[str, object]:
    """What the last ``up`` saved, checked: a corrupt file is one line naming it, never a traceback.

    Deleting it is safe (it holds only the ports and the bucket; the data and keys are elsewhere). An ``auth`` key,
    written by versions that let MLflow run without credentials, is accepted and ignored: auth is always on now.
    """
    if not path.exists():
        return {}
    fix = f"delete {path} and run `make up` again (it holds only the ports and the bucket; data is kept)"
    try:
        saved = json.loads(path.read_text())
    except (OSError, UnicodeDecodeError, ValueError) as exc:
        reason = exc.strerror if isinstance(exc, OSError) else "not valid JSON"
        raise StackError(f"{path} cannot be read ({reason}); {fix}") from None
    if not isinstance(saved, dict):
        raise StackError(f"{path} is not a JSON object; {fix}")
    unknown = sorted(set(saved) - set(StackSettings.SAVED_FIELDS) - set(LEGACY_FIELDS))
    if unknown:
        raise StackError(f"{path} has unknown keys {', '.join(unknown)}; {fix}")
    lost = [name for name in PORT_OPTIONS if name not in saved]
    if lost:
        # `up` always writes all three: without one, commands would silently describe a stack on a default port.
        raise StackError(f"{path} lacks {', '.join(lost)}; {fix}")
    for name, value in saved.items():
        wrong = (
            (name.endswith("_port") and (isinstance(value, bool) or not isinstance(value, int)))
            or (name == "bucket" and (not isinstance(value, str) or not value))
            or (name == "auth" and not isinstance(value, bool))
        )
        if wrong:
            raise StackError(f"{path}: {name}={value!r} has the wrong type; {fix}")
        if name.endswith("_port") and not 1 <= value <= 65535:
            raise StackError(f"{path}: {name}={value} is not in 1-65535; {fix}")
    return {name: value for name, value in saved.items() if name not in LEGACY_FIELDS}


def default_state_dir() -> Path:
    """``LOCAL_STACK_DIR``, else ``.stack/`` in the repository; an empty variable counts as unset (``Path("")``
    would be the current directory, and ``down --wipe`` would delete it)."""
    return Path(os.environ.get("LOCAL_STACK_DIR") or REPO_ROOT / ".stack")


#: Kernel file systems: nothing of the stack can live there (and writing may change the kernel's settings).
_PSEUDO_ROOTS = (Path("/proc"), Path("/sys"), Path("/dev"))


def state_dir_problem(path: Path, writing: bool) -> str | None:
    """Why ``path`` cannot be (or hold) the state directory, in one line with the fix; None when it can.

    ``writing``: the command creates or changes files there (``up``, ``down``, ``backup``, ``restore``...).
    """
    fix = "name another with --state-dir or LOCAL_STACK_DIR (default .stack/ in the repository)"
    if any(path == root or root in path.parents for root in _PSEUDO_ROOTS):
        return f"state directory {path} is on a kernel file system, not a disk; {fix}"
    existing = path
    while not existing.exists() and existing != existing.parent:
        if existing.is_symlink():
            return f"state directory {path}: {existing} is a broken symbolic link; {fix}"
        existing = existing.parent
    if not existing.is_dir():
        what = "is a file" if existing == path else f"lies under the file {existing}"
        return f"state directory {path} {what}, not a directory; {fix}"
    if writing and not os.access(existing, os.W_OK | os.X_OK):
        return f"state directory {path} cannot be written ({existing} is read-only or not yours); {fix}"
    return None


@dataclass(frozen=True)
class StackSettings:
    """Settings of one local stack; two stacks differ in ``state_dir`` and ports."""

    state_dir: Path = field(default_factory=lambda: default_state_dir())
    postgres_port: int = field(default_factory=lambda: _env_int("postgres_port"))
    s3_port: int = field(default_factory=lambda: _env_int("s3_port"))
    mlflow_port: int = field(default_factory=lambda: _env_int("mlflow_port"))
    bucket: str = field(default_factory=lambda: os.environ.get("LOCAL_STACK_BUCKET", "mlflow-artifacts"))
    artifact_prefix: str = "mlartifacts"
    host: str = "127.0.0.1"

    def __post_init__(self) -> None:
        object.__setattr__(self, "state_dir", Path(self.state_dir).expanduser().resolve())
        for field_name, (option, _env_var) in PORT_OPTIONS.items():
            parse_port(field_name, getattr(self, field_name), option)

    #: Fields saved by ``up`` so that later commands on the same state directory find the same stack.
    SAVED_FIELDS = ("postgres_port", "s3_port", "mlflow_port", "bucket")

    @classmethod
    def load(cls, **overrides: object) -> StackSettings:
        """Settings of the stack in ``state_dir``: what its last ``up`` saved, then ports from the environment, then
        explicit ``overrides``.

        Without this, ``env`` or ``down`` on a stack started with other ports would describe the wrong one.
        """
        state_dir = overrides.get("state_dir")
        base = cls(state_dir=state_dir) if state_dir else cls()
        saved_file = base.state_dir / "stack.json"
        saved = _read_saved(saved_file)
        return cls(**{"state_dir": base.state_dir, **saved, **_env_ports(), **overrides})

    def save(self) -> None:
        self.state_dir.mkdir(parents=True, exist_ok=True)
        write_atomically(
            self.state_dir / "stack.json", json.dumps({name: getattr(self, name) for name in self.SAVED_FIELDS})
        )

    @property
    def run_dir(self) -> Path:
        """PID files of the running services."""
        return self.state_dir / "run"

    @property
    def backup_dir(self) -> Path:
        """Database backups (owner-only): apart from the artifact bucket, so that losing the store loses no backup."""
        return self.state_dir / "backups"

    @property
    def log_dir(self) -> Path:
        return self.state_dir / "logs"

    @property
    def secrets_file(self) -> Path:
        """Generated credentials (mode 0600): the only place they are written."""
        return self.state_dir / "credentials.json"

    @property
    def auth_config_file(self) -> Path:
        """MLflow's basic-auth config, 0600: it holds the database URI with its password."""
        return self.state_dir / "basic_auth.ini"

    def log_file(self, service: str) -> Path:
        return self.log_dir / f"{service}.log"

    def pid_file(self, service: str) -> Path:
        return self.run_dir / f"{service}.pid"

    @property
    def tracking_uri(self) -> str:
        return f"http://{self.host}:{self.mlflow_port}"

    @property
    def s3_endpoint(self) -> str:
        return f"http://{self.host}:{self.s3_port}"
