"""Journey: `pulumi destroy`, then `pulumi up` again, with the data kept. Also covers rotating the database password.

The second `up` generates a new database password (a new RandomPassword), while the kept volume holds a database
initialised with the first one; the official image applies `POSTGRES_PASSWORD` only to an empty data directory.
Parts chained, each real: the Pulumi program (under mocks) run twice with the random provider answering
differently, as it does; a real PostgreSQL initialised as the image's entrypoint does (`initdb` with the first
password, local connections `trust`, TCP `scram-sha-256`); the StatefulSet's own postStart hook, taken from the
second run's manifest, run with the container's environment and the second run's Secret; then a TCP sign-in
with the Secret's password, as the migration Job and the tracking server make it.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import psycopg2
import pytest
from mock_harness import Deployment, ProviderMocks, manifests, run_program

from local_stack.postgres import POSTGRES_BIN_PATH, SYSTEM_USER, _ensure_system_user
from local_stack.processes import drop_privileges, free_ports


class SecondUpMocks(ProviderMocks):
    """The random provider's answer on a second `pulumi up` after `destroy`: a different password."""

    def new_resource(self, args):  # type: ignore[no-untyped-def]
        rid, state = super().new_resource(args)
        if args.typ == "random:index/randomPassword:RandomPassword":
            state["result"] = "q" * int(state.get("length", 16))
        return rid, state


def _postgres(deployment: Deployment) -> tuple[dict[str, Any], str]:
    """The PostgreSQL container of the StatefulSet, and the password its Secret holds."""
    objects = manifests(deployment)
    (statefulset,) = [m for m in objects if m["kind"] == "StatefulSet"]
    (container,) = statefulset["spec"]["template"]["spec"]["containers"]
    volume = next(v for v in statefulset["spec"]["template"]["spec"]["volumes"] if v["name"] == "credentials")
    (secret,) = [
        m for m in objects if m["kind"] == "Secret" and m["metadata"]["name"] == volume["secret"]["secretName"]
    ]
    return container, secret["stringData"]["POSTGRES_PASSWORD"]


@pytest.fixture
def kept_database(tmp_path: Path) -> Iterator[tuple[Path, int, str]]:
    """A PostgreSQL initialised with the first `up`'s password; yields (socket dir, port, user)."""
    first_container, first_password = _postgres(run_program({}))
    env = {e["name"]: e.get("value") for e in first_container["env"]}
    user = env["POSTGRES_USER"]
    run_as = SYSTEM_USER if os.geteuid() == 0 else None
    if run_as:
        _ensure_system_user()
    work = Path(tempfile.mkdtemp(prefix="redeploy-pg-"))
    data, sockets = work / "data", work / "run"
    sockets.mkdir()
    pwfile = work / "pw"
    pwfile.write_text(first_password)
    if run_as:
        for path in (work, sockets, pwfile):
            shutil.chown(path, user=run_as, group=run_as)
    privileges = drop_privileges(run_as)
    subprocess.run(
        [str(POSTGRES_BIN_PATH / "initdb"), "-D", str(data), f"--username={user}", f"--pwfile={pwfile}",
         "--auth-local=trust", "--auth-host=scram-sha-256", "--no-instructions"],
        check=True, capture_output=True, **privileges,
    )  # fmt: skip
    (port,) = free_ports(1)
    server = subprocess.Popen(
        [str(POSTGRES_BIN_PATH / "postgres"), "-D", str(data), "-k", str(sockets), "-h", "127.0.0.1", "-p", str(port)],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, **privileges,
    )  # fmt: skip
    try:
        deadline = time.monotonic() + 60
        while subprocess.run(["pg_isready", "-q", "-h", str(sockets), "-p", str(port)], check=False).returncode:
            assert time.monotonic() < deadline, "PostgreSQL did not start"
            time.sleep(0.5)
        create = f"CREATE DATABASE {env['POSTGRES_DB']}"  # what the entrypoint does for POSTGRES_DB
        subprocess.run(
            ["psql", "-h", str(sockets), "-p", str(port), "-U", user, "-d", "postgres", "-c", create],
            check=True, capture_output=True, **privileges,
        )  # fmt: skip
        yield sockets, port, first_password
    finally:
        server.terminate()
        server.wait(timeout=30)
        shutil.rmtree(work, ignore_errors=True)


def _sign_in(port: int, container: dict[str, Any], password: str) -> bool:
    env = {e["name"]: e.get("value") for e in container["env"]}
    try:
        psycopg2.connect(
            host="127.0.0.1", port=port, user=env["POSTGRES_USER"], password=password, dbname=env["POSTGRES_DB"],
            connect_timeout=5,
        ).close()  # fmt: skip
    except psycopg2.OperationalError:
        return False
    return True


def test_a_second_up_after_destroy_reaches_the_kept_data(kept_database: tuple[Path, int, str], tmp_path: Path) -> None:
    sockets, port, first_password = kept_database
    container, password = _postgres(run_program({}, mocks=SecondUpMocks()))
    assert password != first_password
    # The kept data still answers to the old password only: the defect, seen from the migration Job.
    assert not _sign_in(port, container, password)

    hook = container["lifecycle"]["postStart"]["exec"]["command"]
    assert hook[:2] == ["bash", "-c"]
    secret_file = tmp_path / "POSTGRES_PASSWORD"  # the mounted Secret
    secret_file.write_text(password)
    secret_file.chmod(0o444)
    env = {e["name"]: e["value"] for e in container["env"] if "value" in e}
    env.update(POSTGRES_PASSWORD_FILE=str(secret_file), PGHOST=str(sockets), PGPORT=str(port), PATH=os.environ["PATH"])
    result = subprocess.run(hook, env=env, capture_output=True, text=True, timeout=60, check=False)
    assert result.returncode == 0, result.stderr
    assert password not in result.stdout + result.stderr

    assert _sign_in(port, container, password)
    assert not _sign_in(port, container, first_password)
