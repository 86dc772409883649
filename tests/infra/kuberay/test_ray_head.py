"""The declared Ray head and a GPU-group worker, started for real the way KubeRay starts them, each in a sandbox
shaped like its pod, with the driver connecting as the driver Job does.

`pod_sandbox.sh` builds two "pods" without privilege (user, network, mount and PID namespaces): each with its own
IP on one end of a veth pair and no interface leading out, every mount read-only, its own tmpfs on /tmp and
/dev/shm for the template's emptyDirs. `ray_head_probe.py` starts `ray start` in each with KubeRay's command line
for the group's rayStartParams and resources, the container's env and the token KubeRay injects, runs KubeRay's
`wait-gcs-ready` check before the worker, then connects as the driver does (Ray Client, `ray://<head>:10001`,
with the token) and runs a zero-CPU task on the head and a one-GPU "trial" (Ray's logical GPU from the worker's
`nvidia.com/gpu` limit; no device is used). When the probe exits, the kernel ends every process of the sandbox.

What this shows: Ray 2.60 runs under the read-only root with only the scratch mounts; a trial lands on the GPU
worker, not on the head; every port a node opens to other pods, and every connection between the two pods, uses
a port the NetworkPolicy opens (observed, not enforced: no firewall runs in the sandbox); the token lets the
driver in and a wrong one does not. What it cannot show: KubeRay's probes (the venv has `ray[tune]`, whose
dashboard agent runs without its HTTP server: see the README), a real GPU, image pulls and scheduling.
"""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import sys

import pytest
from mlflow_platform.kuberay.cluster import CLOSED_METRICS_PORTS, HEAD_PORTS, NODE_PORTS
from mock_harness import REPO, Deployment

SANDBOX = REPO / "tests" / "infra" / "pod_sandbox.sh"
LOOPBACK = {"127.0.0.1", "::1"}


@pytest.fixture(scope="module")
def cluster() -> dict:
    for tool in ("unshare", "nsenter", "ss", "ip"):
        if not shutil.which(tool):
            pytest.fail(f"the sandbox needs `{tool}` (util-linux, iproute2)")
    command = [
        "unshare", "--user", "--map-root-user", "--net", "--mount", "--pid", "--fork", "--mount-proc",
        "bash", str(SANDBOX), "head", "10.244.0.10",
        sys.executable, str(REPO / "tests" / "infra" / "ray_head_probe.py"), str(REPO / "infra"), str(SANDBOX),
    ]  # fmt: skip
    result = subprocess.run(command, cwd=REPO, capture_output=True, text=True, timeout=540)
    assert result.returncode == 0, result.stderr[-3000:]
    return json.loads(result.stdout.strip().splitlines()[-1])


@pytest.fixture(scope="module")
def policy_ports() -> tuple[set[int], list[range]]:
    from mock_harness import run_program

    d: Deployment = run_program({"ray": "true", "rayImageTag": "0a1b2c3"})
    policy = d.k8s_named("kubernetes:networking.k8s.io/v1:NetworkPolicy", "rapids-mlflow-ray-traffic")
    (rule,) = policy.inputs["spec"]["ingress"]
    single = {int(p["port"]) for p in rule["ports"] if "endPort" not in p}
    ranges = [range(int(p["port"]), int(p["endPort"]) + 1) for p in rule["ports"] if "endPort" in p]
    return single, ranges


def _address(text: str) -> tuple[str, int]:
    address, port = text.rsplit(":", 1)
    return re.sub(r"^\[(::ffff:)?|\]$", "", address), int(port)


def _listening(pod: dict) -> dict[int, set[str]]:
    ports: dict[int, set[str]] = {}
    for line in pod["listening"]:
        address, port = _address(line.split()[3])
        ports.setdefault(port, set()).add(address)
    return ports


def _opened(port: int, policy_ports: tuple[set[int], list[range]]) -> bool:
    single, ranges = policy_ports
    return port in single or any(port in r for r in ranges)


def test_a_trial_runs_on_the_gpu_worker_and_the_head_runs_read_only(cluster: dict) -> None:
    assert cluster["read_only_root"] is True
    driver = cluster["driver"]
    assert isinstance(driver, dict), (
        f"no driver reached the trial in {cluster['seconds_to_trial']} s: {driver}\n"
        f"worker's link moved in: {cluster['worker_link_moved']}; worker's log: {cluster['worker_log']}"
    )
    assert driver["head"] == {"ip": "10.244.0.10", "root_writable": False, "home": "/tmp/home"}
    assert driver["trial"] == {"ip": "10.244.0.11", "gpu_ids": [0]}
    assert cluster["running"] == {"head": True, "worker": True}
    assert any(arg == "--num-gpus=1" for arg in cluster["worker_argv"])


def test_a_driver_with_another_token_is_refused(cluster: dict) -> None:
    assert cluster["wrong_token"]["returncode"] != 0
    assert "RESULT" not in cluster["wrong_token"]["stderr"]


def test_every_port_a_pod_opens_to_other_pods_is_one_the_network_policy_opens(cluster: dict, policy_ports) -> None:
    """Ports bound to loopback are out of other pods' reach; every other one must be in the policy, or be one of
    Ray's two Prometheus endpoints the policy leaves closed on purpose."""
    exposed = {
        name: {port for port, addresses in _listening(pod).items() if addresses - LOOPBACK}
        for name, pod in cluster["pods"].items()
    }
    assert {HEAD_PORTS["port"], HEAD_PORTS["ray-client-server-port"], NODE_PORTS["node-manager-port"]} <= exposed[
        "head"
    ]
    assert {NODE_PORTS["node-manager-port"], NODE_PORTS["object-manager-port"]} <= exposed["worker"]
    for name, ports in exposed.items():
        unexpected = {p for p in ports if not _opened(p, policy_ports)}
        assert unexpected <= set(CLOSED_METRICS_PORTS), f"the {name} listens on {unexpected}, not in the policy"


def test_every_connection_between_the_pods_goes_to_a_port_the_policy_opens(cluster: dict, policy_ports) -> None:
    """Seen from the side that accepted it (its local port is one it listens on)."""
    crossing: set[tuple[str, int]] = set()
    for name, pod in cluster["pods"].items():
        listening = _listening(pod)
        for line in pod["connections"]:
            (local, local_port), (peer, _) = (_address(f) for f in line.split()[3:5])
            if local_port in listening and peer != local and peer not in LOOPBACK:
                crossing.add((name, local_port))
    assert ("head", HEAD_PORTS["port"]) in crossing  # the worker's raylet registers with the GCS
    assert ("worker", NODE_PORTS["node-manager-port"]) in crossing  # the head leases the trial's worker
    assert all(_opened(port, policy_ports) for _, port in crossing), crossing


def test_the_closed_metrics_ports_are_rays_own_numbers() -> None:
    from ray.autoscaler._private.constants import AUTOSCALER_METRIC_PORT
    from ray.dashboard.consts import DASHBOARD_METRIC_PORT

    assert set(CLOSED_METRICS_PORTS) == {AUTOSCALER_METRIC_PORT, DASHBOARD_METRIC_PORT}
