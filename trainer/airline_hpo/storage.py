"""Local paths and ``s3://`` URIs behind one small API (read bytes, write bytes, upload a file).

S3-compatible stores (the local stack's SeaweedFS, MinIO) need an endpoint URL. We honour the same variables the
AWS SDKs and MLflow do, most specific first: ``AWS_ENDPOINT_URL_S3``, ``AWS_ENDPOINT_URL``,
``MLFLOW_S3_ENDPOINT_URL``. On AWS none is set and boto3 finds the regional endpoint itself.
"""

from __future__ import annotations

import os
from pathlib import Path
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


def read_bytes(uri: str) -> bytes:
    """The whole object or file; missing and unreadable inputs become one-line :class:`TrainerError`."""
    if is_s3(uri):
        from botocore.exceptions import BotoCoreError, ClientError

        bucket, key = split_s3_uri(uri)
        try:
            return s3_client().get_object(Bucket=bucket, Key=key)["Body"].read()
        except (BotoCoreError, ClientError) as exc:
            raise _s3_error(uri, exc) from exc
    path = Path(uri).expanduser()
    if not path.exists():
        raise TrainerError(f"fpath {uri} does not exist", "prepare the data first (entry point prepare_data)")
    if path.is_dir():
        raise TrainerError(f"fpath {uri} is a directory", "pass the parquet file itself")
    try:
        return path.read_bytes()
    except OSError as exc:
        raise TrainerError(f"cannot read fpath {uri}: {exc.strerror}", "fix the file's permissions") from exc


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
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_bytes(payload)
    tmp.replace(path)  # readers never see a half-written file


def upload_file(path: str | Path, uri: str) -> None:
    """Copy a local file to ``uri`` (local or S3); the demo uses it to put the prepared data in the bucket."""
    write_bytes(uri, Path(path).read_bytes())
