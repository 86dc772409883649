"""An attacker on this machine, without the stack's credentials, against every port the stack listens on.

The ports are not taken from our own code: they are read from the process table (every TCP and Unix socket the
stack's processes listen on), and each one is tried with every protocol the store speaks: plain HTTP, HTTPS
without a client certificate, gRPC in clear and over TLS without a client certificate, and the store's own
clients (``weed shell``, ``weed backup``) that an attacker would reach for; the MLflow port with its REST API, the
UI's ajax API, the UI page, the artifact proxy and ``/metrics``. Every reading or destructive request must fail,
and the data must be intact afterwards. Positive controls with the stack's certificate prove that the
same requests would work for a holder of the keys, so a refusal is the lock, not a wrong address.
"""

from __future__ import annotations

import contextlib
import http.client
import json
import os
import ssl
import stat
import subprocess
from collections.abc import Iterator
from pathlib import Path

import grpc
import psutil
import psycopg2
import pytest
from mlflow import MlflowClient
from stack_cli import run_cli

from local_stack import LocalStack, object_store, postgres, tracking_server
from local_stack.smoke_check import run_smoke_check
from local_stack.stack import SERVICES
from tests.other_local_user import connect_as_nobody
from tests.stack_fixtures import started_stack_cli, use_stack

pytestmark = pytest.mark.integration

#: Requests that read or destroy through SeaweedFS's HTTP APIs (master, volume, filer).
HTTP_ATTACKS = (
    ("POST", "/col/delete?collection={bucket}"),
    ("POST", "/dir/assign"),
    ("POST", "/vol/grow?count=1"),
    ("GET", "/dir/status"),
    ("GET", "/buckets/{bucket}/"),
    ("DELETE", "/buckets/{bucket}/{key}"),
)
#: A gRPC method every SeaweedFS master serves; on another server it is UNIMPLEMENTED, which still proves the
#: connection was accepted: only UNAVAILABLE (refused before any call) counts as locked.
GRPC_PROBE = "/master_pb.Seaweed/ListCollectionNames"

#: Requests that read through the MLflow server (REST API, the UI's ajax API, the UI, the artifact proxy, the
#: Prometheus scrape). ``/health``, ``/static`` and ``server-info`` answer anyone by MLflow's design and carry no
#: tracking data. ``{run}``/``{experiment}``/``{artifact}`` come from the smoke check's run.
MLFLOW_READS = (
    ("GET", "/api/2.0/mlflow/experiments/search?max_results=10", None),
    ("POST", "/api/2.0/mlflow/experiments/search", {"max_results": 10}),
    ("GET", "/ajax-api/2.0/mlflow/experiments/search?max_results=10", None),
    ("GET", "/api/2.0/mlflow/runs/get?run_id={run}", None),
    ("POST", "/ajax-api/2.0/mlflow/runs/search", {"experiment_ids": ["{experiment}"]}),
    ("GET", "/api/2.0/mlflow-artifacts/artifacts/{artifact}", None),
    ("GET", "/get-artifact?path=hello.txt&run_uuid={run}", None),
    ("GET", "/metrics", None),
    ("GET", "/", None),
)
#: Requests that destroy through the MLflow server; with the login they are sent against a run of their own.
MLFLOW_DELETES = (
    ("POST", "/api/2.0/mlflow/runs/delete", {"run_id": "{run}"}),
    ("POST", "/ajax-api/2.0/mlflow/experiments/delete", {"experiment_id": "{experiment}"}),
    ("DELETE", "/api/2.0/mlflow-artifacts/artifacts/{artifact}", None),
)


@pytest.fixture(scope="module")
def attacked(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalStack]:
    """A stack of its own, started as a user does: if a lock is missing, the attack must not wreck the suite's
    shared stack, and the bucket-loss test below restores into it from another process."""
    with started_stack_cli(tmp_path_factory.mktemp("attacked-stack")) as stack:
        yield stack


def _listeners(stack: LocalStack) -> tuple[dict[int, str], dict[str, str]]:
    """Every TCP port and Unix socket path the stack's processes listen on, with the service that owns it."""
    tcp: dict[int, str] = {}
    unix: dict[str, str] = {}
    for svc in SERVICES:
        leader = psutil.Process(stack.process(svc).inspect().pid)
        for proc in [leader, *leader.children(recursive=True)]:
            with contextlib.suppress(psutil.NoSuchProcess):
                for conn in proc.net_connections(kind="inet"):
                    if conn.status == psutil.CONN_LISTEN:
                        tcp[conn.laddr.port] = svc.name
                for conn in proc.net_connections(kind="unix"):
                    if conn.laddr and conn.status in (psutil.CONN_LISTEN, psutil.CONN_NONE) and not conn.raddr:
                        unix[conn.laddr] = svc.name
    return tcp, unix


def _http(port: int, method: str, path: str, context: ssl.SSLContext | None) -> int | str:
    """The status of one request, or the error that stopped it before any answer."""
    conn = (
        http.client.HTTPSConnection("127.0.0.1", port, timeout=10, context=context)
        if context
        else http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    )
    try:
        conn.request(method, path, body=b"" if method != "GET" else None)
        return conn.getresponse().status
    except (OSError, http.client.HTTPException) as exc:
        return type(exc).__name__
    finally:
        conn.close()


def _mlflow(port: int, request: tuple[str, str, dict | None], ids: dict[str, str], login: dict[str, str]) -> int:
    """Status of one MLflow request with ``login`` (``Authorization`` header, or none) and ids filled in."""
    method, template, body = request
    path = template.format(**ids)
    payload = json.dumps(body).replace("{run}", ids["run"]).replace("{experiment}", ids["experiment"])
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
    try:
        headers = {**login, **({"Content-Type": "application/json"} if body is not None else {})}
        conn.request(method, path, body=payload.encode() if body is not None else None, headers=headers)
        return conn.getresponse().status
    finally:
        conn.close()


def _tls_without_client_cert() -> ssl.SSLContext:
    context = ssl.create_default_context()
    context.check_hostname = False
    context.verify_mode = ssl.CERT_NONE
    return context


def _tls_with_stack_cert(stack: LocalStack) -> ssl.SSLContext:
    tls = object_store.tls_dir(stack.settings)
    context = ssl.create_default_context(cafile=str(tls / "ca.crt"))
    context.check_hostname = False
    context.load_cert_chain(tls / "store.crt", tls / "store.key")
    return context


def _grpc_code(port: int, credentials: grpc.ChannelCredentials | None) -> grpc.StatusCode:
    target = f"127.0.0.1:{port}"
    channel = grpc.secure_channel(target, credentials) if credentials else grpc.insecure_channel(target)
    with channel:
        try:
            channel.unary_unary(GRPC_PROBE)(b"", timeout=10)
        except grpc.RpcError as exc:
            return exc.code()
    return grpc.StatusCode.OK


def _weed(args: list[str], cwd: Path, stdin: str = "", config_dir: Path | None = None) -> tuple[int, str]:
    """Run the store's own client as an attacker would: from an empty directory, with no security.toml found."""
    argv = [str(object_store.weed_binary()), *([f"-config_dir={config_dir}"] if config_dir else []), *args]
    env = {"PATH": os.environ["PATH"], "HOME": str(cwd)}
    try:
        result = subprocess.run(argv, input=stdin, capture_output=True, text=True, cwd=cwd, env=env, timeout=25)
    except subprocess.TimeoutExpired as exc:
        out = (exc.stdout or b"").decode(errors="replace") if isinstance(exc.stdout, bytes) else (exc.stdout or "")
        return 124, out
    return result.returncode, result.stdout + result.stderr


def _weed_addresses(stack: LocalStack) -> dict[str, str]:
    """``host:http.grpc`` of master, volume and filer, as ``weed shell`` and ``weed backup`` take them."""
    svc = next(svc for svc in SERVICES if svc.name == object_store.SERVICE)
    flags = dict(
        arg.lstrip("-").split("=", 1)
        for arg in psutil.Process(stack.process(svc).inspect().pid).cmdline()
        if arg.startswith("-") and "=" in arg
    )
    return {
        role: f"127.0.0.1:{flags[f'{role}.port']}.{flags[f'{role}.port.grpc']}"
        for role in ("master", "volume", "filer")
    }


def test_every_port_refuses_requests_without_the_stack_credentials(attacked: LocalStack, tmp_path: Path) -> None:
    stack = attacked
    settings, creds = stack.settings, stack.credentials
    logged = run_smoke_check(stack)  # an artifact in the bucket that the attacks must not read or destroy
    tcp, unix = _listeners(stack)
    public = {settings.postgres_port: "postgres", settings.s3_port: "s3", settings.mlflow_port: "mlflow"}
    assert set(public) <= set(tcp), (tcp, public)
    internal = {port: name for port, name in tcp.items() if port not in public}
    # Only the store has internal ports; anything else listening is a port nobody has locked.
    assert internal and set(internal.values()) == {object_store.SERVICE}, tcp
    assert len(internal) >= 7  # master, volume, filer (HTTP + gRPC each) and the S3 gateway's gRPC

    refused_http: dict[tuple[int, str, str], object] = {}
    for port in internal:
        for method, template in HTTP_ATTACKS:
            path = template.format(bucket=settings.bucket, key=logged.object_key)
            for label, context in (("http", None), ("https-no-cert", _tls_without_client_cert())):
                refused_http[(port, label, f"{method} {path}")] = _http(port, method, path, context)
    answered = {k: v for k, v in refused_http.items() if isinstance(v, int) and v < 400}
    assert not answered, f"answered without credentials: {answered}"

    no_cert = grpc.ssl_channel_credentials(root_certificates=(object_store.tls_dir(settings) / "ca.crt").read_bytes())
    grpc_codes = {
        (port, label): _grpc_code(port, c) for port in internal for label, c in (("h2c", None), ("tls", no_cert))
    }
    accepted = {k: v for k, v in grpc_codes.items() if v != grpc.StatusCode.UNAVAILABLE}
    assert not accepted, f"gRPC calls got past the connection without a client certificate: {accepted}"

    # The store's own tools, as an attacker runs them: no security.toml, no certificate.
    addresses = _weed_addresses(stack)
    shell_args = ["shell", f"-master={addresses['master']}", f"-filer={addresses['filer']}"]
    attacks = (
        f"collection.list\nfs.ls /buckets/{settings.bucket}\nfs.rm /buckets/{settings.bucket}/{logged.object_key}\n"
    )
    attacks += f"collection.delete -collection={settings.bucket} -force\n"
    _code, shell_out = _weed(shell_args, tmp_path, stdin=attacks)
    assert settings.bucket not in shell_out and "collection:" not in shell_out, shell_out
    for volume_id in range(1, 9):
        _weed(["backup", f"-server={addresses['master']}", f"-dir={tmp_path}", f"-volumeId={volume_id}"], tmp_path)
    copied = [p for p in tmp_path.iterdir() if p.suffix in (".dat", ".idx") and p.stat().st_size > 8]
    assert not copied, f"weed backup copied volume files without credentials: {copied}"

    # S3 without the keys, and with a wrong secret; PostgreSQL without the password.
    s3_unsigned = {
        (method, path): _http(settings.s3_port, method, path, None)
        for method, path in (
            ("GET", f"/{settings.bucket}/"),
            ("GET", f"/{settings.bucket}/{logged.object_key}"),
            ("DELETE", f"/{settings.bucket}/{logged.object_key}"),
            ("DELETE", f"/{settings.bucket}"),
        )
    }
    assert all(status == 403 for status in s3_unsigned.values()), s3_unsigned
    wrong = object_store.s3_client(settings, creds.s3_access_key, "not-the-secret")
    with pytest.raises(Exception, match=r"SignatureDoesNotMatch|AccessDenied"):
        wrong.list_objects_v2(Bucket=settings.bucket)
    for user in ("mlflow", "postgres"):
        with pytest.raises(psycopg2.OperationalError, match="password"):
            psycopg2.connect(
                host="127.0.0.1", port=settings.postgres_port, user=user, dbname="mlflow", connect_timeout=5
            )

    # MLflow: every read (API, UI, artifacts, metrics) and every delete needs the stack's login; a wrong one fails.
    ids = {
        "run": logged.run_id,
        "experiment": logged.experiment_id,
        "artifact": logged.object_key.removeprefix(f"{settings.artifact_prefix}/"),
    }
    admin = tracking_server.client_credentials(creds)
    wrong_login = tracking_server.auth_header({**admin, "MLFLOW_TRACKING_PASSWORD": "not-the-password"})
    mlflow_answers = {
        (request[0], request[1], label): _mlflow(settings.mlflow_port, request, ids, login)
        for request in (*MLFLOW_READS, *MLFLOW_DELETES)
        for label, login in (("no login", {}), ("wrong password", wrong_login))
    }
    assert all(status == 401 for status in mlflow_answers.values()), mlflow_answers

    # Unix sockets beside the ports: owner-only, so no other local user can even connect.
    assert unix, "SeaweedFS opened no Unix socket; this test no longer sees where they are"
    for path, service in unix.items():
        mode = os.stat(path).st_mode
        assert stat.S_ISSOCK(mode) and not mode & 0o077, f"{service} socket {path} is open to others"
        as_nobody = connect_as_nobody(path)
        assert as_nobody.returncode != 0 and "PermissionError" in as_nobody.stderr, (path, as_nobody.stderr)

    # Nothing was read or destroyed: S3 with the keys still serves the artifact, and the bucket is readable.
    s3 = object_store.s3_client(settings, creds.s3_access_key, creds.s3_secret_key)
    assert logged.run_id.encode() in s3.get_object(Bucket=settings.bucket, Key=logged.object_key)["Body"].read()
    object_store.bucket_reachable(settings, creds)

    # Positive controls: the same requests with the stack's certificate do work, so the refusals above are locks.
    master_http = int(addresses["master"].rsplit(":", 1)[1].split(".")[0])
    assert _http(master_http, "GET", "/dir/status", _tls_with_stack_cert(stack)) == 200
    code, listed = _weed([*shell_args], tmp_path, stdin="collection.list\n", config_dir=object_store.tls_dir(settings))
    assert code == 0 and settings.bucket in listed, listed
    login = tracking_server.auth_header(admin)
    read = {request[1]: _mlflow(settings.mlflow_port, request, ids, login) for request in MLFLOW_READS}
    assert all(status == 200 for status in read.values()), read
    throwaway = run_smoke_check(stack, experiment_name="attack-positive-control")  # the deletes hit this one
    own = {
        "run": throwaway.run_id,
        "experiment": throwaway.experiment_id,
        "artifact": throwaway.object_key.removeprefix(f"{settings.artifact_prefix}/"),
    }
    deleted = {request[1]: _mlflow(settings.mlflow_port, request, own, login) for request in MLFLOW_DELETES}
    assert all(status == 200 for status in deleted.values()), deleted


def test_a_backup_survives_the_loss_of_the_bucket_and_status_names_it(
    attacked: LocalStack, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The issue's disaster, done by a holder of the keys (as a disk failure would): every object of the bucket
    becomes unreadable. `status` must say so, and the database backup, kept apart, must still restore."""
    stack = attacked
    settings = stack.settings
    use_stack(monkeypatch, stack)
    client = MlflowClient(settings.tracking_uri)
    experiment_id = client.create_experiment("kept-by-the-backup")
    backed_up = run_cli(stack, "backup")
    assert backed_up.returncode == 0, backed_up.stderr
    key = backed_up.stdout.strip().splitlines()[-1]
    assert str(settings.state_dir / key) in backed_up.stderr

    master_http = int(_weed_addresses(stack)["master"].rsplit(":", 1)[1].split(".")[0])
    wiped = _http(master_http, "POST", f"/col/delete?collection={settings.bucket}", _tls_with_stack_cert(stack))
    assert wiped in (200, 204), wiped
    status = run_cli(stack, "status")
    assert status.returncode == 1, status  # not healthy: a script or supervisor sees it in the exit status
    s3_line = next(line for line in status.stdout.splitlines() if line.startswith(object_store.SERVICE))
    assert "BUCKET UNREADABLE" in s3_line and "make backups" in s3_line, status.stdout

    listed = run_cli(stack, "backups")
    assert listed.returncode == 0 and key in listed.stdout.splitlines()
    assert str(settings.backup_dir) in listed.stderr
    postgres.drop_database(settings, stack.credentials, postgres.MLFLOW_DATABASE)
    restored = run_cli(stack, "restore", key)
    assert restored.returncode == 0, restored.stderr
    assert MlflowClient(settings.tracking_uri).get_experiment(experiment_id).name == "kept-by-the-backup"


def test_a_store_started_without_the_locks_is_told_apart(attacked: LocalStack) -> None:
    """After an upgrade, a `weed server` started by the older version keeps running with open ports; `status`
    tells it by its command line (no ``-config_dir``) and says to restart it."""
    svc = next(svc for svc in SERVICES if svc.name == object_store.SERVICE)
    assert object_store.is_locked(attacked.process(svc).inspect().pid)
    # Any process whose command line lacks -config_dir stands for the old store (no second store is started).
    unlocked = subprocess.Popen(["sleep", "60"])
    try:
        assert not object_store.is_locked(unlocked.pid)
    finally:
        unlocked.kill()
        unlocked.wait(10)
