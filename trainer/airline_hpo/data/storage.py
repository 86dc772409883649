"""Local paths and ``s3://`` URIs behind one small API (read bytes, write bytes, upload a file).

S3-compatible stores (the local stack's SeaweedFS, MinIO) need an endpoint URL. We honour the same variables the
AWS SDKs and MLflow do, most specific first: ``AWS_ENDPOINT_URL_S3``, ``AWS_ENDPOINT_URL``,
``MLFLOW_S3_ENDPOINT_URL``. On AWS none is set and boto3 finds the regional endpoint itself.
"""

from __future__ import annotations

import io
import os
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

from airline_hpo.errors import TrainerError

ENDPOINT_VARS = ("AWS_ENDPOINT_URL_S3", "AWS_ENDPOINT_URL", "MLFLOW_S3_ENDPOINT_URL")


def is_s3(uri: str) -> bool:
    return uri.startswith("s3://")


def split_s3_uri(uri: str) -> tuple[str, str]:
    """``s3://bucket/key`` -> (bucket, key); a URI without a key is a user error, not a crash."""
    parsed = urlparse(uri)
    key = parsed.path.lstrip("/")
    if not parsed.netloc or not key:
        raise TrainerError(f"{uri!r} is not an S3 object URI", "use the form s3://<bucket>/<key>")
    return parsed.netloc, key


def s3_endpoint() -> str | None:
    for name in ENDPOINT_VARS:
        if os.environ.get(name):
            return os.environ[name]
    return None


def s3_client():
    """A boto3 S3 client for the configured endpoint, with few retries so a dead store fails fast."""
    import boto3
    from botocore.config import Config

    config = Config(retries={"max_attempts": 2, "mode": "standard"}, connect_timeout=5, read_timeout=60)
    return boto3.client("s3", endpoint_url=s3_endpoint(), config=config)


def _s3_error(uri: str, exc: Exception) -> TrainerError:
    """Map boto3's many exception types to the few things a user can do about them."""
    from botocore.exceptions import ClientError, EndpointConnectionError, NoCredentialsError

    if isinstance(exc, NoCredentialsError):
        return TrainerError(f"no AWS credentials to read {uri}", "set AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY")
    if isinstance(exc, EndpointConnectionError):
        return TrainerError(
            f"cannot reach the S3 endpoint for {uri} ({exc})",
            "start the store (`make up`) or set MLFLOW_S3_ENDPOINT_URL / AWS_ENDPOINT_URL to its address",
        )
    if isinstance(exc, ClientError):
        code = exc.response.get("Error", {}).get("Code", "")
        if code in {"NoSuchKey", "404", "NotFound"}:
            return TrainerError(f"fpath {uri} does not exist", "upload the file there or pass an existing fpath")
        if code == "NoSuchBucket":
            return TrainerError(f"the bucket of {uri} does not exist", "create it or correct the bucket name")
        return TrainerError(
            f"cannot read {uri}: {code or exc}", "check the access key's permissions on that bucket and key"
        )
    return TrainerError(f"cannot read {uri}: {exc}", "check the URI, the endpoint and the credentials")


def fsspec_storage_options() -> dict[str, Any]:
    """``storage_options`` for ``cudf.read_parquet("s3://...")`` (fsspec's s3fs), from the variables MLflow and
    boto3 read: the endpoint of an S3-compatible store (SeaweedFS, MinIO) and the key pair when one is set.

    Without a key pair s3fs falls back to boto's own chain (instance profile, IRSA on EKS). Path-style
    addressing goes with a custom endpoint: such stores rarely resolve bucket subdomains. The dict holds
    secrets: pass it on, never print or log it.
    """
    options: dict[str, Any] = {}
    key, secret = os.environ.get("AWS_ACCESS_KEY_ID"), os.environ.get("AWS_SECRET_ACCESS_KEY")
    if key and secret:
        options.update(key=key, secret=secret)
        if os.environ.get("AWS_SESSION_TOKEN"):
            options["token"] = os.environ["AWS_SESSION_TOKEN"]
    client_kwargs: dict[str, str] = {}
    endpoint = s3_endpoint()
    if endpoint:
        client_kwargs["endpoint_url"] = endpoint
        options["config_kwargs"] = {"s3": {"addressing_style": "path"}}
    region = os.environ.get("AWS_REGION") or os.environ.get("AWS_DEFAULT_REGION")
    if region:
        client_kwargs["region_name"] = region
    if client_kwargs:
        options["client_kwargs"] = client_kwargs
    return options


class S3RangeFile(io.RawIOBase):
    """A seekable, read-only view of an S3 object that fetches only the byte ranges asked for.

    pyarrow reads a parquet file's footer first and then only the column chunks it needs, so reading a few
    columns through this file transfers those columns, not the whole object. ``bytes_fetched`` says how much
    came over the network.
    """

    def __init__(self, uri: str) -> None:
        from botocore.exceptions import BotoCoreError, ClientError

        super().__init__()
        self.uri = uri
        self._bucket, self._key = split_s3_uri(uri)
        self._client = s3_client()
        try:
            self.size = int(self._client.head_object(Bucket=self._bucket, Key=self._key)["ContentLength"])
        except (BotoCoreError, ClientError) as exc:
            raise _s3_error(uri, exc) from exc
        self._position = 0
        self.bytes_fetched = 0

    def readable(self) -> bool:
        return True

    def seekable(self) -> bool:
        return True

    def tell(self) -> int:
        return self._position

    def seek(self, offset: int, whence: int = io.SEEK_SET) -> int:
        base = {io.SEEK_SET: 0, io.SEEK_CUR: self._position, io.SEEK_END: self.size}[whence]
        self._position = max(0, base + offset)
        return self._position

    def readinto(self, buffer: Any) -> int:
        from botocore.exceptions import BotoCoreError, ClientError

        wanted = min(len(buffer), self.size - self._position)
        if wanted <= 0:
            return 0
        last = self._position + wanted - 1
        try:
            body = self._client.get_object(Bucket=self._bucket, Key=self._key, Range=f"bytes={self._position}-{last}")
            data = body["Body"].read()
        except (BotoCoreError, ClientError) as exc:
            raise _s3_error(self.uri, exc) from exc
        memoryview(buffer).cast("B")[: len(data)] = data
        self._position += len(data)
        self.bytes_fetched += len(data)
        return len(data)


def local_file(uri: str) -> Path:
    """An existing local file, or a one-line error saying what is there instead."""
    path = Path(uri).expanduser()
    if not path.exists():
        raise TrainerError(f"fpath {uri} does not exist", "prepare the data first (entry point prepare_data)")
    if path.is_dir():
        raise TrainerError(f"fpath {uri} is a directory", "pass the parquet file itself")
    if not os.access(path, os.R_OK):
        raise TrainerError(f"cannot read fpath {uri}: permission denied", "fix the file's permissions")
    return path


def read_bytes(uri: str) -> bytes:
    """The whole object or file; missing and unreadable inputs become one-line :class:`TrainerError`."""
    if is_s3(uri):
        from botocore.exceptions import BotoCoreError, ClientError

        bucket, key = split_s3_uri(uri)
        try:
            return s3_client().get_object(Bucket=bucket, Key=key)["Body"].read()
        except (BotoCoreError, ClientError) as exc:
            raise _s3_error(uri, exc) from exc
    path = local_file(uri)
    try:
        return path.read_bytes()
    except OSError as exc:
        raise TrainerError(f"cannot read fpath {uri}: {exc.strerror}", "fix the file's permissions") from exc


def _not_writable(uri: str, reason: str) -> TrainerError:
    return TrainerError(
        f"cannot write {uri}: {reason}",
        "pass an output in a writable place: under /tmp (the default) or $HOME, or an s3:// URI "
        "(the training image runs as uid 1001 in a root-owned project directory)",
    )


def check_writable(uri: str) -> None:
    """Fail in one line, before any work, when a local ``uri`` cannot be created: its nearest existing
    ancestor must be a directory this user may write to (S3 permissions show only on the write itself)."""
    if is_s3(uri):
        split_s3_uri(uri)
        return
    path = Path(uri).expanduser().absolute()
    if path.is_dir():
        raise _not_writable(uri, "it is a directory")
    ancestor = path.parent
    while not ancestor.exists():
        ancestor = ancestor.parent
    if not ancestor.is_dir():
        raise _not_writable(uri, f"{ancestor} is a file, not a directory")
    if not os.access(ancestor, os.W_OK):
        raise _not_writable(uri, f"{ancestor} is not writable for uid {os.getuid()}")


def write_bytes(uri: str, payload: bytes) -> None:
    if is_s3(uri):
        from botocore.exceptions import BotoCoreError, ClientError

        bucket, key = split_s3_uri(uri)
        try:
            s3_client().put_object(Bucket=bucket, Key=key, Body=payload)
        except (BotoCoreError, ClientError) as exc:
            raise _s3_error(uri, exc) from exc
        return
    path = Path(uri).expanduser()
    tmp = path.with_name(path.name + ".tmp")
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp.write_bytes(payload)
        tmp.replace(path)  # readers never see a half-written file
    except OSError as exc:
        raise _not_writable(uri, exc.strerror or str(exc)) from exc


def upload_file(path: str | Path, uri: str) -> None:
    """Copy a local file to ``uri`` (local or S3); the demo uses it to put the prepared data in the bucket."""
    write_bytes(uri, Path(path).read_bytes())
