"""Journey: cancel a run. `pulumi up` -> bridge -> `mlflow run --backend kubernetes` -> Ctrl-C -> no GPU held.

Every part on the path runs for real: the Pulumi program (under mocks) declares the job template, the Role and
the orphan reaper; the bridge writes MLflow's backend files from the stack's outputs; MLflow's own Kubernetes
backend submits and cancels (`KubernetesSubmittedRun.cancel()`, unmodified); the stand-in API server answers as
batch/v1 does (a Job DELETE without `propagationPolicy` orphans the pod, cited in `kube_api_standin`); the
reaper's own script, as the CronJob declares it, runs against the stand-in with only its declared Role's rights.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from airline_hpo.cluster import bridge
from kube_api_standin import ORPHAN_WARNING, ApiRequest, KubeApiStandIn
from kube_callers import standin_cluster, submit_with_mlflow
from mock_harness import Deployment, manifests
from rbac_authorizer import DISCOVERY_RULES, allowing_rules, forbidden_message, request_attributes

PARAMS = {"fpath": "s3://bucket/datasets/airline_small.parquet", "max_evals": "2"}
GPU = "nvidia.com/gpu"


def _outputs(deployment: Deployment) -> dict[str, Any]:
    return {k: bridge.SECRET_MASK if k in deployment.secret_exports else v for k, v in deployment.exports.items()}


def _reaper(deployment: Deployment) -> tuple[dict[str, Any], list[dict[str, Any]], str]:
    """The reaper's container (as the CronJob runs it), its Role's rules, and the user it acts as."""
    objects = manifests(deployment)
    (cron,) = [m for m in objects if m["kind"] == "CronJob" and m["metadata"]["name"].endswith("orphan-reaper")]
    (role,) = [m for m in objects if m["kind"] == "Role" and m["metadata"]["name"] == cron["metadata"]["name"]]
    pod = cron["spec"]["jobTemplate"]["spec"]["template"]["spec"]
    assert pod["automountServiceAccountToken"] is True  # the script needs its token in the pod
    user = f"system:serviceaccount:{cron['metadata']['namespace']}:{pod['serviceAccountName']}"
    return pod["containers"][0], role["rules"], user


def _run_reaper(container: dict[str, Any], kubeconfig: Path) -> subprocess.CompletedProcess:
    """The container's command with its env, on this machine's Python (the same `kubernetes` client)."""
    command = container["command"]
    assert command[:2] == ["python", "-c"]
    env = {e["name"]: e["value"] for e in container["env"]}
    env.update(PATH=os.environ.get("PATH", ""), KUBECONFIG=str(kubeconfig), HOME=str(kubeconfig.parent))
    return subprocess.run(
        [sys.executable, "-c", command[2]], env=env, capture_output=True, text=True, timeout=120, check=False
    )


def _gpu_pods(api: KubeApiStandIn) -> list[str]:
    with api.state.lock:
        pods = list(api.state.pods.values())
    return [
        p["metadata"]["name"]
        for p in pods
        if any(GPU in (c.get("resources", {}).get("limits") or {}) for c in p["spec"]["containers"])
    ]


def _authorizer(rules_by_user: dict[str, list[dict[str, Any]]]):
    """Each request is judged as the caller it comes from: the reaper's requests carry a pod-list/delete verb
    on pods, MLflow's a Job verb; both are checked against the rules of the one the stack declares for it."""

    def authorize(request: ApiRequest) -> str | None:
        attrs = request_attributes(request.method, request.path, request.query)
        if not attrs.resource_request:
            return None if allowing_rules(DISCOVERY_RULES, attrs) else "forbidden"
        user = "reaper" if attrs.resource == "pods" else "submitter"
        return None if allowing_rules(rules_by_user[user], attrs) else forbidden_message(attrs, user)

    return authorize


@pytest.fixture(scope="module")
def deployment() -> Deployment:
    from mock_harness import run_program

    return run_program({})


def test_a_cancelled_run_leaves_no_pod_holding_a_gpu(deployment: Deployment, tmp_path: Path) -> None:
    outputs = _outputs(deployment)
    files = bridge.write_backend_files(outputs, tmp_path / "k8s")
    container, reaper_rules, _ = _reaper(deployment)
    training_role = deployment.one("kubernetes:rbac.authorization.k8s.io/v1:Role", "training").inputs["rules"]
    authorize = _authorizer({"reaper": reaper_rules, "submitter": training_role})
    with standin_cluster(tmp_path, job_phases=("active",), authorize=authorize) as api:
        running = submit_with_mlflow(files.config_path, outputs["kube_mlflow_tracking_uri"], PARAMS, tmp_path)
        cancelled = submit_with_mlflow(files.config_path, outputs["kube_mlflow_tracking_uri"], PARAMS, tmp_path)
        cancelled.get_status()
        cancelled.cancel()  # what Ctrl-C on `mlflow run` calls
        # MLflow sent no propagation policy: the Job is gone, its pod runs on, ownerless, holding its GPU.
        delete = api.requests[-1]
        assert delete.method == "DELETE" and "propagationPolicy" not in (delete.body or {})
        assert len(api.state.jobs) == 1
        assert len(_gpu_pods(api)) == 2, "the stand-in must orphan the cancelled Job's pod as batch/v1 does"

        result = _run_reaper(container, tmp_path / "kubeconfig")
        assert result.returncode == 0, result.stderr
        (survivor,) = _gpu_pods(api)
        assert survivor.startswith(running._job_name)  # a live Job's pod is never touched
        assert "deleted pod" in result.stdout and cancelled._job_name in result.stdout

        # A second pass finds nothing more to do.
        again = _run_reaper(container, tmp_path / "kubeconfig")
        assert again.returncode == 0 and again.stdout == ""


def test_the_stand_in_orphans_like_batch_v1_and_cascades_only_when_asked(tmp_path: Path) -> None:
    """The stand-in's Job DELETE, checked against the API server's documented behaviour (see its docstring)."""
    import kubernetes
    from kube_callers import kubeconfig_in_use

    with standin_cluster(tmp_path) as api, kubeconfig_in_use(tmp_path / "kubeconfig"):
        kubernetes.config.load_kube_config()
        batch = kubernetes.client.BatchV1Api()
        job = {
            "apiVersion": "batch/v1",
            "kind": "Job",
            "metadata": {"name": "j", "namespace": "mlflow"},
            "spec": {"template": {"metadata": {}, "spec": {"containers": [{"name": "c", "image": "i"}]}}},
        }
        batch.create_namespaced_job("mlflow", job)
        _, _, headers = batch.delete_namespaced_job_with_http_info("j", "mlflow", body={})
        assert ORPHAN_WARNING in headers.get("Warning", "")
        (orphan,) = api.state.pods.values()
        assert "ownerReferences" not in orphan["metadata"] and orphan["status"]["phase"] == "Running"

        batch.create_namespaced_job("mlflow", {**job, "metadata": {"name": "k", "namespace": "mlflow"}})
        batch.delete_namespaced_job("k", "mlflow", propagation_policy="Background")
        assert [p["metadata"]["name"] for p in api.state.pods.values()] == [orphan["metadata"]["name"]]
