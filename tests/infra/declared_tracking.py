"""The tracking Deployment's declared command, run for real on 127.0.0.1 (shared by the command tests and the
browser tests in tests/ui/).

The program runs under mocks with the given config. The schema migration Job the Deployment depends on, then the
Deployment's containers, run as processes with the env the declared Secrets give them and the auth config file
mounted from the auth Secret. Only host/port and the database/bucket are swapped for the local stack's (a fresh
database and a fresh prefix in its bucket). A flag the program forgets, or a wrong secret key name, fails here as
it would in the cluster.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import mlflow
import pulumi
import pytest
import requests
from declared_pods import Swaps, declared_secrets, prepare, run_to_completion, start, stop
from mock_harness import Deployment, run_program

from local_stack import postgres
from local_stack.processes import free_ports


@dataclass(frozen=True)
class DeclaredServer:
    """The declared server running on 127.0.0.1:`port`, and the credentials its Secrets hold."""

    port: int
    admin: tuple[str, str]
    training: tuple[str, str]
    deployment: Deployment

    def post(self, path: str, json: dict, headers: dict[str, str], auth: tuple[str, str] | None) -> requests.Response:
        return requests.post(f"http://127.0.0.1:{self.port}{path}", json=json, headers=headers, auth=auth, timeout=30)


def _pod_spec(d: Deployment) -> dict:
    return d.k8s_named("kubernetes:apps/v1:Deployment", "rapids-mlflow-tracking").inputs["spec"]["template"]["spec"]


def _job_pod_specs(d: Deployment, after_deployment: bool = False) -> list[dict]:
    """Pod specs of the Jobs the tracking Deployment depends on (or, `after_deployment`, that depend on it)."""
    deployment = d.k8s_named("kubernetes:apps/v1:Deployment", "rapids-mlflow-tracking")
    jobs = d.of_type("kubernetes:batch/v1:Job")
    if after_deployment:
        jobs = [j for j in jobs if deployment.urn in j.dependencies]
    else:
        jobs = [j for j in jobs if j.urn in deployment.dependencies]
    assert jobs, f"no Job {'after' if after_deployment else 'before'} the tracking Deployment"
    # Kubernetes runs them side by side in no set order; the mocks register them in the order their inputs
    # resolve, which varies: one fixed order makes a failure reproducible.
    return [j.inputs["spec"]["template"]["spec"] for j in sorted(jobs, key=lambda job: job.urn)]


def _run_jobs(pod_specs: list[dict], secrets: dict, root: Path, swaps: Swaps) -> list[str]:
    """Run each Job's containers to completion (as Kubernetes would, in order); return their output."""
    outputs = []
    for spec in pod_specs:
        for container in spec["containers"]:
            result = run_to_completion(prepare(spec, container, secrets, root, swaps), cwd=root, timeout=180)
            assert result.returncode == 0, f"{container['name']} failed:\n{result.stderr[-3000:]}"
            outputs.append(result.stdout)
    return outputs


def _wait_healthy(port: int, proc, log: Path, timeout: float = 180) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            pytest.fail(f"the declared server exited with {proc.returncode}:\n{log.read_text()[-3000:]}")
        try:
            if requests.get(f"http://127.0.0.1:{port}/health", timeout=3).status_code == 200:
                return
        except requests.RequestException:
            pass
        time.sleep(0.5)
    pytest.fail(f"the declared server did not answer /health within {timeout:.0f}s:\n{log.read_text()[-3000:]}")


@contextmanager
def declared_tracking_server(
    local_stack, root: Path, config: dict[str, str], port: int | None = None
) -> Iterator[DeclaredServer]:
    """Declare the stack with `config`, run its tracking pod's Jobs and server on 127.0.0.1:`port` (a free one if
    None) against a fresh database of `local_stack`; stop it and drop the database afterwards."""
    d = run_program(config)
    pulumi.runtime.set_all_config({}, secret_keys=[])
    secrets = declared_secrets(d)
    pod = _pod_spec(d)
    main = pod["containers"][0]
    # The image the cluster runs is the MLflow this environment runs: same version, same server code.
    assert main["image"].rsplit(":v", 1)[-1].removesuffix("-full") == mlflow.__version__

    settings, creds = local_stack.stack.settings, local_stack.stack.credentials
    database = f"declared_{uuid.uuid4().hex[:8]}"
    postgres.create_database(settings, creds, database)
    port = port or free_ports(1)[0]
    swaps = Swaps()
    declared_uri = secrets["rapids-mlflow-db-credentials"]["MLFLOW_BACKEND_STORE_URI"]
    swaps.add(declared_uri, postgres.backend_store_uri(settings, creds, database))
    swaps.add(d.exports["artifact_root"], f"s3://{settings.bucket}/{database}")
    s3 = secrets["rapids-mlflow-s3-credentials"]
    swaps.add(s3["AWS_ACCESS_KEY_ID"], creds.s3_access_key)
    swaps.add(s3["AWS_SECRET_ACCESS_KEY"], creds.s3_secret_key)
    swaps.add("--host=0.0.0.0", "--host=127.0.0.1")
    swaps.add(f"--port={int(main['ports'][0]['containerPort'])}", f"--port={port}")

    log = root / "mlflow.log"
    swaps.add(d.exports["kube_mlflow_tracking_uri"], f"http://127.0.0.1:{port}")  # the Service's host/port
    # The order Pulumi and the kubelet impose: the migration Job (the Deployment depends on it), then the
    # Deployment's init containers, then its container; then the Jobs that wait for the Deployment.
    _run_jobs(_job_pod_specs(d), secrets, root, swaps)
    _run_jobs([{**pod, "containers": pod.get("initContainers") or []}], secrets, root, swaps)
    server = prepare(pod, main, secrets, root, swaps)
    server.env["MLFLOW_S3_ENDPOINT_URL"] = settings.s3_endpoint  # the bucket's host/port
    proc = start(server, cwd=root, log=log)
    try:
        _wait_healthy(port, proc, log)
        first = _run_jobs(_job_pod_specs(d, after_deployment=True), secrets, root, swaps)
        again = _run_jobs(_job_pod_specs(d, after_deployment=True), secrets, root, swaps)  # a re-run: idempotent
        assert any("created MLflow user training" in out for out in first), first
        assert any("MLflow user training exists" in out for out in again), again  # a re-run: idempotent
        auth, training = secrets["rapids-mlflow-tracking-auth"], secrets["rapids-mlflow-training-auth"]
        yield DeclaredServer(
            port,
            (auth["MLFLOW_AUTH_ADMIN_USERNAME"], auth["MLFLOW_AUTH_ADMIN_PASSWORD"]),
            (training["MLFLOW_TRACKING_USERNAME"], training["MLFLOW_TRACKING_PASSWORD"]),
            d,
        )
    finally:
        stop(proc)
        postgres.drop_database(settings, creds, database)
