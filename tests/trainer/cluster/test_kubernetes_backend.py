"""MLflow's Kubernetes backend, run for real with the bridge's files, against a stand-in Kubernetes API.

`mlflow.projects.kubernetes` (submit, wait, cancel) runs unchanged on the pinned `kubernetes` client, configured
from a kubeconfig file, and sends real HTTPS to `kube_api_standin` on 127.0.0.1. These tests are the guard on
the client pin: `kubernetes` 37 validates arguments with pydantic and refuses MLflow's `pretty=True` before any
request leaves (`ValidationError`), so with such a pin every test here fails at the first API call.
The same runs, checked against the Role the Pulumi program declares, are in `tests/infra/training/test_rbac.py`.
"""

from __future__ import annotations

import json
from pathlib import Path

import kubernetes_validate
import pytest
import yaml
from airline_hpo.cluster import bridge
from kube_api_standin import TOKEN, kube_api_standin
from kube_callers import IMAGE_DIGEST, RUN_ID, kubeconfig_in_use, standin_cluster, submit_with_mlflow
from kubernetes.client.exceptions import ApiException
from mlflow.entities import RunStatus

FIXTURE = Path(__file__).resolve().parent / "fixtures" / "stack_outputs.json"
KUBERNETES_VERSION = "1.34"
PARAMS = {"fpath": "s3://bucket/datasets/airline_small.parquet", "max_evals": "2"}


@pytest.fixture
def outputs() -> dict:
    return json.loads(FIXTURE.read_text())


def _bridge(outputs: dict, out_dir: Path) -> Path:
    return bridge.write_backend_files(outputs, out_dir).config_path


def test_mlflow_submits_the_job_and_waits_until_it_succeeds(outputs: dict, tmp_path: Path) -> None:
    config_path = _bridge(outputs, tmp_path / "k8s")
    with standin_cluster(tmp_path, job_phases=("pending", "active", "succeeded")) as api:
        submitted = submit_with_mlflow(config_path, outputs["kube_mlflow_tracking_uri"], PARAMS, tmp_path)
        assert submitted.wait() is True
        assert submitted.get_status() == RunStatus.FINISHED
        assert submitted.run_id == RUN_ID
    create, *polls = api.requests
    namespace = outputs["namespace"]
    assert (create.method, create.path) == ("POST", f"/apis/batch/v1/namespaces/{namespace}/jobs")
    job_path = f"/apis/batch/v1/namespaces/{namespace}/jobs/{create.body['metadata']['name']}/status"
    assert [(p.method, p.path) for p in polls] == [("GET", job_path)] * 3
    # The kubeconfig's credentials and MLflow's `pretty=True` (what client 37 refuses) went out on every call.
    assert {r.authorization for r in api.requests} == {f"Bearer {TOKEN}"}
    assert {tuple(r.query["pretty"]) for r in api.requests} == {("True",)}

    job = create.body
    kubernetes_validate.validate(job, KUBERNETES_VERSION, strict=True)
    assert job["metadata"]["namespace"] == namespace and job["metadata"]["name"].startswith("airline-hpo-")
    pod = job["spec"]["template"]["spec"]
    assert pod["serviceAccountName"] == outputs["training_service_account"]
    (container,) = pod["containers"]
    assert container["image"] == f"{outputs['repository_uri']}:5d41402@{IMAGE_DIGEST}"
    assert container["command"][:3] == ["python", "-m", "airline_hpo.search"]
    assert container["command"][container["command"].index("--fpath") + 1] == PARAMS["fpath"]
    env = {e["name"]: e for e in container["env"]}
    assert env["MLFLOW_TRACKING_URI"]["value"] == outputs["kube_mlflow_tracking_uri"]
    assert env["MLFLOW_RUN_ID"]["value"] == RUN_ID
    assert "secretKeyRef" in env["AWS_SECRET_ACCESS_KEY"]["valueFrom"]
    assert container["resources"]["limits"]["nvidia.com/gpu"] == 1


def test_a_failed_job_ends_the_wait_as_failed(outputs: dict, tmp_path: Path) -> None:
    config_path = _bridge(outputs, tmp_path / "k8s")
    with standin_cluster(tmp_path, job_phases=("active", "failed")) as api:
        submitted = submit_with_mlflow(config_path, outputs["kube_mlflow_tracking_uri"], PARAMS, tmp_path)
        assert submitted.wait() is False
        assert submitted.get_status() == RunStatus.FAILED
    assert len(api.requests) == 3


def test_cancel_deletes_the_job(outputs: dict, tmp_path: Path) -> None:
    config_path = _bridge(outputs, tmp_path / "k8s")
    with standin_cluster(tmp_path, job_phases=("active",)) as api:
        submitted = submit_with_mlflow(config_path, outputs["kube_mlflow_tracking_uri"], PARAMS, tmp_path)
        assert submitted.get_status() == RunStatus.RUNNING
        submitted.cancel()
        assert submitted.get_status() == RunStatus.KILLED
        name = api.requests[0].body["metadata"]["name"]
        assert api.state.jobs == {}
    delete = api.requests[-1]
    assert (delete.method, delete.path) == ("DELETE", f"/apis/batch/v1/namespaces/mlflow/jobs/{name}")
    assert delete.query["pretty"] == ["True"]


def test_the_stacks_kube_context_picks_the_cluster(outputs: dict, tmp_path: Path) -> None:
    """`kube_context` (from `pulumi config set kubernetes:context`) wins over the kubeconfig's current context."""
    outputs["kube_context"] = "gpu-cluster"
    config_path = _bridge(outputs, tmp_path / "k8s")
    with kube_api_standin() as api:
        kubeconfig = api.write_kubeconfig(tmp_path / "kubeconfig", context="gpu-cluster")
        config = yaml.safe_load(kubeconfig.read_text())
        config["clusters"].append({"name": "laptop", "cluster": {"server": "https://127.0.0.1:9"}})
        config["contexts"].append({"name": "laptop", "context": {"cluster": "laptop", "user": "submitter"}})
        config["current-context"] = "laptop"
        kubeconfig.write_text(yaml.safe_dump(config))
        with kubeconfig_in_use(kubeconfig):
            submit_with_mlflow(config_path, outputs["kube_mlflow_tracking_uri"], PARAMS, tmp_path)
    assert [r.method for r in api.requests] == ["POST"]


def test_a_refused_call_reaches_the_user_as_the_api_servers_403(outputs: dict, tmp_path: Path) -> None:
    """What a submitter without the Role sees: MLflow does not catch the client's error."""
    config_path = _bridge(outputs, tmp_path / "k8s")
    refusal = 'jobs.batch is forbidden: User "alice" cannot create resource "jobs" in API group "batch"'
    with standin_cluster(tmp_path, authorize=lambda request: refusal), pytest.raises(ApiException) as raised:
        submit_with_mlflow(config_path, outputs["kube_mlflow_tracking_uri"], PARAMS, tmp_path)
    assert raised.value.status == 403 and "cannot create resource" in raised.value.body
