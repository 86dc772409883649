"""The callers of the Kubernetes API on the submitting side, run for real against `kube_api_standin`.

- MLflow's Kubernetes backend: `mlflow.projects.kubernetes.run_kubernetes_job`, then the returned
  `KubernetesSubmittedRun`'s `wait()` or `cancel()`, fed exactly as `mlflow run --backend kubernetes
  --backend-config k8s_config.json` feeds them (MLflow's `_parse_kubernetes_config` reads the bridge's files; the
  command and environment come from MLflow's project loader and this repository's MLproject). The client is
  configured by `kubernetes.config` from a kubeconfig file, as on a user's machine, so the real client builds
  and sends real HTTP.
- `kubectl logs -f job/<name>`, which the README gives for following a run: the real `kubectl` binary when it is
  installed; `KUBECTL_LOGS_CALLS` declares what it sends (a test checks the declaration against the binary).

Only the Docker image build and push are not run (no Docker engine here): the image tag and digest are what
`build_docker_image` and `push_image_to_registry` would hand over.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import kubernetes
from kube_api_standin import KubeApiStandIn, kube_api_standin
from mlflow.entities import Run, RunData, RunInfo, RunStatus
from mlflow.projects import _parse_kubernetes_config, load_project
from mlflow.projects.kubernetes import KubernetesSubmittedRun, run_kubernetes_job
from mlflow.projects.utils import get_entry_point_command, get_run_env_vars

TRAINER_DIR = Path(__file__).resolve().parents[1] / "trainer"
RUN_ID = "5d41402abc4b2a76b9719d911017c592"
IMAGE_DIGEST = "sha256:" + "ab" * 32
KUBECTL = shutil.which("kubectl")

# What `kubectl logs -f job/<name>` sends (kubectl 1.32, recorded against the stand-in; `test_rbac` checks this
# list against the installed binary): API discovery (the cluster's `system:discovery` role allows it), the Job
# for its pod selector, the Job's pods, a watch for the first pod when the Job has none yet, the pod's log.
KUBECTL_LOGS_CALLS: list[tuple[str, str, dict[str, list[str]]]] = [
    ("GET", "/version", {}),
    ("GET", "/api", {}),
    ("GET", "/apis", {}),
    ("GET", "/api/v1", {}),
    ("GET", "/apis/batch/v1", {}),
    ("GET", "/apis/batch/v1/namespaces/{namespace}/jobs/{job}", {}),
    ("GET", "/api/v1/namespaces/{namespace}/pods", {}),
    ("GET", "/api/v1/namespaces/{namespace}/pods", {"watch": ["true"]}),
    ("GET", "/api/v1/namespaces/{namespace}/pods/{pod}/log", {"follow": ["true"]}),
]


@contextmanager
def kubeconfig_in_use(kubeconfig: Path) -> Iterator[None]:
    """Point the `kubernetes` client at `kubeconfig` as `export KUBECONFIG=...` does for a new `mlflow run`.

    The client reads `KUBECONFIG` once, at import, into `KUBE_CONFIG_DEFAULT_LOCATION`; this process imported it
    long before, so the module value is set for the duration, and the client's default configuration (which
    `load_kube_config` replaces) is restored afterwards.
    """
    kube_config_module = kubernetes.config.kube_config
    saved_location = kube_config_module.KUBE_CONFIG_DEFAULT_LOCATION
    saved_default = kubernetes.client.Configuration.get_default_copy()
    kube_config_module.KUBE_CONFIG_DEFAULT_LOCATION = str(kubeconfig)
    try:
        yield
    finally:
        kube_config_module.KUBE_CONFIG_DEFAULT_LOCATION = saved_location
        kubernetes.client.Configuration.set_default(saved_default)


def _active_run(experiment_id: str = "1") -> Run:
    """The MLflow run `mlflow run` creates before submitting (only its id reaches the backend)."""
    info = RunInfo(
        run_id=RUN_ID,
        experiment_id=experiment_id,
        user_id="alice",
        status=RunStatus.to_string(RunStatus.RUNNING),
        start_time=0,
        end_time=None,
        lifecycle_stage="active",
    )
    return Run(info, RunData())


def submit_with_mlflow(
    config_path: Path,
    kube_mlflow_tracking_uri: str,
    parameters: Mapping[str, str],
    storage_dir: Path,
    entry_point: str = "hyperopt",
) -> KubernetesSubmittedRun:
    """Submit this repository's project the way `mlflow run --backend kubernetes --backend-config` does.

    `storage_dir` is where MLflow would download `path` parameters (`mlflow run --storage-dir`).

    Call inside `kubeconfig_in_use`. `KUBE_MLFLOW_TRACKING_URI` is set for the call, as the bridge's printed
    lines export it. The returned run polls without MLflow's 5 s pause (the stand-in answers at once).
    """
    backend_config = json.loads(config_path.read_text())
    kube_config = _parse_kubernetes_config(backend_config)
    project = load_project(str(TRAINER_DIR))
    run = _active_run()
    command = get_entry_point_command(project, entry_point, dict(parameters), str(storage_dir))
    env_vars = get_run_env_vars(run_id=run.info.run_id, experiment_id=run.info.experiment_id)
    saved = os.environ.get("KUBE_MLFLOW_TRACKING_URI")
    os.environ["KUBE_MLFLOW_TRACKING_URI"] = kube_mlflow_tracking_uri
    try:
        submitted = run_kubernetes_job(
            project.name,
            run,
            f"{kube_config['repository-uri']}:5d41402",
            IMAGE_DIGEST,
            command,
            env_vars,
            kube_config.get("kube-context", None),
            kube_config["kube-job-template"],
        )
    finally:
        if saved is None:
            os.environ.pop("KUBE_MLFLOW_TRACKING_URI", None)
        else:
            os.environ["KUBE_MLFLOW_TRACKING_URI"] = saved
    submitted.POLL_STATUS_INTERVAL = 0
    return submitted


def run_kubectl_logs(api: KubeApiStandIn, kubeconfig: Path, job: str, namespace: str = "mlflow") -> str:
    """Run the installed `kubectl -n <namespace> logs -f job/<job>` against the stand-in; return its output."""
    assert KUBECTL, "kubectl is not installed"
    home = kubeconfig.parent / "kubectl-home"
    home.mkdir(exist_ok=True)
    env = {"PATH": os.environ.get("PATH", ""), "HOME": str(home), "KUBECONFIG": str(kubeconfig)}
    result = subprocess.run(
        [KUBECTL, "-n", namespace, "logs", "-f", f"job/{job}", "--cache-dir", str(home / "cache")],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 0, result.stderr
    return result.stdout


def declared_kubectl_logs_calls(namespace: str, job: str, pod: str) -> list[tuple[str, str, dict[str, Any]]]:
    """`KUBECTL_LOGS_CALLS` for one Job and its pod."""
    return [
        (method, path.format(namespace=namespace, job=job, pod=pod), query)
        for method, path, query in KUBECTL_LOGS_CALLS
    ]


@contextmanager
def standin_cluster(workdir: Path, **standin_options: Any) -> Iterator[KubeApiStandIn]:
    """A started stand-in, with a kubeconfig in `workdir` pointing at it in use (see `kube_api_standin`)."""
    with kube_api_standin(**standin_options) as api, kubeconfig_in_use(api.write_kubeconfig(workdir / "kubeconfig")):
        yield api
