"""SeaweedFS's own ports (filer, volume) refuse anyone without the stack's signing key, while S3 with the stack's
keys, and MLflow's artifact proxy on top of it, work end to end. Without the keys, the filer port used to serve
reads, writes and deletes of every artifact to anyone on the machine.

These ports also demand the stack's client certificate (test_store_ports_attack.py); here the requests carry it,
so what is tested is the second lock: even a holder of the certificate needs a token signed with the JWT keys.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import re
import ssl
import time
import urllib.error
import urllib.request
from pathlib import Path

import psutil
import pytest

from local_stack import object_store
from local_stack.smoke_check import run_smoke_check
from local_stack.stack import SERVICES
from tests.stack_fixtures import use_stack

pytestmark = pytest.mark.integration


def _internal_ports(stack) -> dict[str, int]:
    svc = next(svc for svc in SERVICES if svc.name == object_store.SERVICE)
    cmdline = psutil.Process(stack.process(svc).inspect().pid).cmdline()
    found = (re.fullmatch(r"-(filer|volume)\.port=(\d+)", arg) for arg in cmdline)
    return {m.group(1): int(m.group(2)) for m in found if m}


def _jwt(key: str, **claims: object) -> str:
    """An HS256 token as SeaweedFS signs them (what a holder of the stack's key can make)."""

    def part(data: bytes) -> str:
        return base64.urlsafe_b64encode(data).rstrip(b"=").decode()

    head = part(json.dumps({"alg": "HS256", "typ": "JWT"}).encode())
    body = part(json.dumps({"exp": int(time.time()) + 60, **claims}).encode())
    sig = hmac.new(key.encode(), f"{head}.{body}".encode(), hashlib.sha256).digest()
    return f"{head}.{body}.{part(sig)}"


def _with_client_cert(stack) -> ssl.SSLContext:
    tls = object_store.tls_dir(stack.settings)
    context = ssl.create_default_context(cafile=str(tls / "ca.crt"))
    context.check_hostname = False
    context.load_cert_chain(tls / "store.crt", tls / "store.key")
    return context


def _call(
    context: ssl.SSLContext, method: str, url: str, data: bytes | None = None, token: str | None = None
) -> tuple[int, bytes]:
    request = urllib.request.Request(url, data=data, method=method)
    if token:
        request.add_header("Authorization", f"Bearer {token}")
    try:
        with urllib.request.urlopen(request, timeout=10, context=context) as resp:
            return resp.status, resp.read()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read()


def test_filer_and_volume_ports_refuse_requests_without_the_stack_key(local_stack, tmp_path, monkeypatch):
    stack = local_stack.stack
    settings, creds = stack.settings, stack.credentials
    logged = run_smoke_check(stack)  # an artifact logged through MLflow's proxy, stored via S3
    ports = _internal_ports(stack)
    cert = _with_client_cert(stack)
    filer = f"https://{settings.host}:{ports['filer']}"
    volume = f"https://{settings.host}:{ports['volume']}"
    path = f"/buckets/{settings.bucket}/{logged.object_key}"

    assert _call(cert, "GET", filer + path)[0] in (401, 403)
    assert _call(cert, "GET", filer + f"/buckets/{settings.bucket}/")[0] in (401, 403)
    assert _call(cert, "PUT", filer + f"/buckets/{settings.bucket}/intruder.txt", b"x")[0] in (401, 403)
    assert _call(cert, "DELETE", filer + path)[0] in (401, 403)

    status, meta = _call(cert, "GET", filer + path + "?metadata=true", token=_jwt(creds.seaweedfs_filer_read_key))
    assert status == 200, meta
    chunks = json.loads(meta)["chunks"]
    fid = chunks[0].get("file_id") or chunks[0]["fileId"]
    assert _call(cert, "GET", f"{volume}/{fid}")[0] in (401, 403)
    assert _call(cert, "DELETE", f"{volume}/{fid}")[0] in (401, 403)
    assert _call(cert, "POST", f"{volume}/{fid}", b"overwritten")[0] in (401, 403)
    status, body = _call(cert, "GET", f"{volume}/{fid}", token=_jwt(creds.seaweedfs_volume_read_key, fid=fid))
    assert status == 200 and logged.run_id.encode() in body

    # Nothing of the above touched the artifact: S3 with the keys and MLflow's proxy still read it.
    s3 = object_store.s3_client(settings, creds.s3_access_key, creds.s3_secret_key)
    assert logged.run_id.encode() in s3.get_object(Bucket=settings.bucket, Key=logged.object_key)["Body"].read()
    keys = [o["Key"] for o in s3.list_objects_v2(Bucket=settings.bucket).get("Contents", [])]
    assert not any("intruder" in key for key in keys)
    from mlflow import MlflowClient

    use_stack(monkeypatch, stack)
    back = MlflowClient(settings.tracking_uri).download_artifacts(logged.run_id, "hello.txt", str(tmp_path))
    assert logged.run_id in Path(back).read_text()
