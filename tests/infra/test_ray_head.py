"""The declared Ray head, started for real the way KubeRay starts it, in a sandbox shaped like its pod.

`pod_sandbox.sh` runs in new user, network, mount and PID namespaces (no privilege needed): the root filesystem
and every other mount read-only, tmpfs on /tmp and /dev/shm as the pod template's emptyDirs, one "pod IP" and no
way out of the network namespace. `ray_head_probe.py` starts `ray start --head` with KubeRay's command line for the
head group's rayStartParams and the container's env plus the token KubeRay injects, then connects as the driver
Job does (Ray Client, `RAY_ADDRESS`-style `ray://<head>:10001`, with the token). When the probe exits, the kernel
ends every process of the sandbox.

What this shows: Ray 2.60 runs under the read-only root with only the two scratch mounts; every port it opens to
other pods is one the NetworkPolicy opens; the token lets the driver in and a wrong one does not. What it cannot
show: the GPU workers (a second node would need a second network namespace), KubeRay's probes (the venv has
`ray[tune]`, whose dashboard agent runs without its HTTP server: see the README), image pulls and scheduling.
"""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import sys

import pytest
from mlflow_platform.ray_cluster import CLOSED_METRICS_PORTS, HEAD_PORTS, MAX_WORKER_PORT, MIN_WORKER_PORT, NODE_PORTS
from mock_harness import REPO, Deployment

POD_IP = "10.244.0.10"


@pytest.fixture(scope="module")
def head() -> dict:
    if not shutil.which("unshare") or not shutil.which("ss"):
        pytest.fail("the sandbox needs util-linux `unshare` and iproute2 `ss` (apt-get install util-linux iproute2)")
    command = [
        "unshare", "--user", "--map-root-user", "--net", "--mount", "--pid", "--fork", "--mount-proc",
        "bash", str(REPO / "tests" / "infra" / "pod_sandbox.sh"),
        sys.executable, str(REPO / "tests" / "infra" / "ray_head_probe.py"), str(REPO / "infra"),
    ]  # fmt: skip
    result = subprocess.run(command, cwd=REPO, capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr[-3000:]
    return json.loads(result.stdout.strip().splitlines()[-1])


def _listening(report: dict) -> dict[int, set[str]]:
    """Port -> addresses a process listens on (from `ss -ltnp`)."""
    ports: dict[int, set[str]] = {}
    for line in report["listening"]:
        local = line.split()[3]
        address, port = local.rsplit(":", 1)
        ports.setdefault(int(port), set()).add(re.sub(r"^\[(::ffff:)?|\]$", "", address))
    return ports


def test_the_head_runs_under_a_read_only_root_and_serves_the_driver(head: dict) -> None:
    assert head["read_only_root"] is True
    assert head["with_token"] == {"ip": POD_IP, "root_writable": False, "home": "/tmp/home"}
    assert head["head_running"] is True


def test_a_client_with_another_token_is_refused(head: dict) -> None:
    assert head["wrong_token"]["returncode"] != 0
    assert "RESULT" not in head["wrong_token"]["stderr"]


def test_every_port_open_to_other_pods_is_one_the_network_policy_opens(ray_deployment: Deployment, head: dict) -> None:
    """Ports bound to loopback are out of other pods' reach; every other one must be in the policy, or be one of
    the two metrics endpoints the policy leaves closed on purpose."""
    policy = ray_deployment.k8s_named("kubernetes:networking.k8s.io/v1:NetworkPolicy", "rapids-mlflow-ray-traffic")
    (rule,) = policy.inputs["spec"]["ingress"]
    opened = {int(p["port"]) for p in rule["ports"] if "endPort" not in p}
    ranges = [range(int(p["port"]), int(p["endPort"]) + 1) for p in rule["ports"] if "endPort" in p]
    exposed = {port for port, addresses in _listening(head).items() if addresses - {"127.0.0.1", "::1"}}
    assert {HEAD_PORTS["port"], HEAD_PORTS["ray-client-server-port"], NODE_PORTS["node-manager-port"]} <= exposed
    unexpected = {p for p in exposed if p not in opened and not any(p in r for r in ranges)}
    assert unexpected <= set(CLOSED_METRICS_PORTS), f"Ray listens on {unexpected}, which the policy does not name"
    assert (MIN_WORKER_PORT, MAX_WORKER_PORT) == (10002, 19999)


def test_the_closed_metrics_ports_are_rays_own_numbers() -> None:
    from ray.autoscaler._private.constants import AUTOSCALER_METRIC_PORT
    from ray.dashboard.consts import DASHBOARD_METRIC_PORT

    assert set(CLOSED_METRICS_PORTS) == {AUTOSCALER_METRIC_PORT, DASHBOARD_METRIC_PORT}


@pytest.fixture(scope="module")
def ray_deployment() -> Deployment:
    from mock_harness import run_program

    return run_program({"ray": "true", "rayImageTag": "0a1b2c3"})
