"""Start the declared Ray head and one GPU-group worker the way KubeRay v1.7.0 starts them, each in a pod-like
sandbox, connect as the driver Job does, and report what happened (one JSON object on stdout).

Run by `test_ray_head.py` inside `pod_sandbox.sh head ...` (the head's pod); it starts the worker's pod itself
(`pod_sandbox.sh worker ...` in new network and mount namespaces, its veth end moved in). When this process exits,
the kernel ends every process of the PID namespace, both Ray nodes included.

Command lines are KubeRay's (ray-operator/controllers/ray/common/pod.go at v1.7.0: `setMissingRayStartParams`,
`generateRayStartCommand`, `convertParamMap`): `ray start` plus the group's rayStartParams, plus for the head
`--dashboard-host=0.0.0.0`, for a worker `--address=<head>:6379`, `--num-cpus` from the CPU request, `--memory`
from the memory limit, `--num-gpus` from the `nvidia.com/gpu` limit, and `--block`, as sorted `--key=value`. Before
the worker starts, KubeRay's `wait-gcs-ready` init container command (`ray health-check --address <head>:6379`)
runs. The env is the container's literal env plus what KubeRay injects for `authOptions.mode: token`.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time

HEAD_IP, WORKER_IP = "10.244.0.10", "10.244.0.11"
TOKEN = "probe-token-" + "x" * 36
MEMORY = "3Gi"
# Bounded so two nodes fit this machine; KubeRay leaves it to Ray (30% of the container's memory).
OBJECT_STORE = str(200 * 2**20)
#: How long the drivers may take, all tries together, to reach the trial on the worker.
DRIVER_DEADLINE_S = 240

_CLIENT = """
import json, os, ray
ray.init("ray://{ip}:{port}")
@ray.remote(num_cpus=0)
def on_head():
    try:
        open("/opt/written", "w").close()
        root_writable = True
    except OSError:
        root_writable = False
    home = os.environ["HOME"]
    os.makedirs(home, exist_ok=True)
    open(os.path.join(home, "written"), "w").close()
    return {{"ip": ray.util.get_node_ip_address(), "root_writable": root_writable, "home": home}}
@ray.remote(num_gpus=1)
def trial():
    return {{"ip": ray.util.get_node_ip_address(), "gpu_ids": ray.get_gpu_ids()}}
print("RESULT " + json.dumps({{"head": ray.get(on_head.remote()), "trial": ray.get(trial.remote())}}))
"""


def _command(base: list[str], params: dict[str, str]) -> list[str]:
    return [*base, *(f"--{k}={v}" for k, v in sorted(params.items()))]


def _env(container: dict) -> dict[str, str]:
    env = {e["name"]: e["value"] for e in container["env"] if "value" in e}
    return {**os.environ, **env, "RAY_AUTH_MODE": "token", "RAY_AUTH_TOKEN": TOKEN}


def _ss(args: str, pid: int | None = None) -> list[str]:
    prefix = ["nsenter", "-t", str(pid), "-n"] if pid else []
    return subprocess.run([*prefix, "ss", *args.split()], capture_output=True, text=True).stdout.splitlines()


def _move_into_own_netns(link: str, pid: int, within_s: float = 60.0) -> bool:
    """Move `link` into the network namespace of `pid` once that process has made its own.

    Until `unshare` has called unshare(2), `/proc/<pid>/ns/net` is still this namespace, and `ip link set ... netns
    <pid>` succeeds while moving nothing: under load the worker then waited for a link that never came and exited.
    """
    ours = os.readlink("/proc/self/ns/net")
    deadline = time.monotonic() + within_s
    while time.monotonic() < deadline:
        try:
            if os.readlink(f"/proc/{pid}/ns/net") != ours:
                moved = subprocess.run(["ip", "link", "set", link, "netns", str(pid)], capture_output=True)
                return moved.returncode == 0
        except FileNotFoundError:
            return False  # the worker's sandbox already exited
        time.sleep(0.05)
    return False


def _worker_log(pid: int) -> str:
    """The worker's `ray start` output, from its own /tmp (a tmpfs only its mount namespace sees)."""
    try:
        with open(f"/proc/{pid}/root/tmp/ray-worker.log") as log:
            return log.read()[-2000:]
    except OSError as error:
        return f"(no worker log: {error})"


def main(infra_dir: str, sandbox: str) -> None:
    sys.path.insert(0, infra_dir)
    from mlflow_platform.core.config import parse
    from mlflow_platform.core.naming import Names
    from mlflow_platform.core.quantities import parse_bytes, parse_cpu
    from mlflow_platform.kuberay.cluster import CLIENT_PORT, GCS_PORT, ray_cluster_manifest

    cfg = parse(
        {"aws:region": "us-east-1", "ray": "true", "rayImageTag": "probe", "rayHeadMemory": MEMORY}
        | {"rayWorkerMemory": MEMORY, "rayWorkerCpu": "2", "rayWorkerGpus": "1"}
    )
    spec = ray_cluster_manifest(cfg, Names(cfg.name_prefix, cfg.namespace), "image:probe", "http://t:5000")["spec"]
    ray_bin = os.path.join(os.path.dirname(sys.executable), "ray")
    memory = str(int(parse_bytes(MEMORY)))

    head = spec["headGroupSpec"]
    head_container = head["template"]["spec"]["containers"][0]
    head_params = {**head["rayStartParams"], "dashboard-host": "0.0.0.0", "memory": memory}
    head_argv = _command([ray_bin, "start", "--head", "--block"], {**head_params, "object-store-memory": OBJECT_STORE})
    with open("/tmp/ray-head.log", "w") as log:
        head_proc = subprocess.Popen(head_argv, env=_env(head_container), stdout=log, stderr=subprocess.STDOUT)

    (group,) = spec["workerGroupSpecs"]
    worker_container = group["template"]["spec"]["containers"][0]
    resources = worker_container["resources"]
    worker_params = {
        **group["rayStartParams"],
        "address": f"{HEAD_IP}:{GCS_PORT}",
        "num-cpus": str(int(parse_cpu(resources["requests"]["cpu"]))),
        "memory": str(int(parse_bytes(resources["limits"]["memory"]))),
        "num-gpus": str(resources["limits"]["nvidia.com/gpu"]),
    }
    worker_argv = _command([ray_bin, "start", "--block"], {**worker_params, "object-store-memory": OBJECT_STORE})
    wait_gcs = (
        f"until {ray_bin} health-check --address {HEAD_IP}:{GCS_PORT} >/dev/null 2>&1; do sleep 2; done; "
        + " ".join(worker_argv)
        + " > /tmp/ray-worker.log 2>&1"
    )
    worker_pod = subprocess.Popen(
        ["unshare", "--net", "--mount", "bash", sandbox, "worker", WORKER_IP, "bash", "-c", wait_gcs],
        env=_env(worker_container),
    )
    moved = _move_into_own_netns("v1", worker_pod.pid)

    client = _CLIENT.format(ip=HEAD_IP, port=CLIENT_PORT)
    driver_env = {**os.environ, "RAY_AUTH_MODE": "token", "RAY_AUTH_TOKEN": TOKEN, "HOME": "/tmp/driver"}
    report: dict = {
        "head_argv": head_argv[2:],
        "worker_argv": worker_argv[2:],
        "read_only_root": not os.access("/opt", os.W_OK),
    }
    # Until the trial has run: the first drivers may come before the head answers or wait for the worker to join.
    # An attempt that runs out of time is a failed attempt, not the probe's end: under load (2 cores, the suite's
    # other workers busy) one driver took more than 90 s, while the same probe alone reaches the trial in ~30 s.
    started = time.monotonic()
    deadline = started + DRIVER_DEADLINE_S
    run: subprocess.CompletedProcess[str] | None = None
    failure = "no driver ran"
    while time.monotonic() < deadline and head_proc.poll() is None:
        try:
            run = subprocess.run(
                [sys.executable, "-c", client],
                env=driver_env,
                capture_output=True,
                text=True,
                timeout=max(10.0, deadline - time.monotonic()),
            )
        except subprocess.TimeoutExpired as expired:
            failure = f"the driver did not finish by the deadline: {str(expired.stderr or '')[-1500:]}"
            break
        if run.returncode == 0:
            break
        failure = run.stderr[-2000:]
        time.sleep(2)
    results = [line[7:] for line in run.stdout.splitlines() if line.startswith("RESULT ")] if run else []
    report["driver"] = json.loads(results[0]) if results else failure
    report["seconds_to_trial"] = round(time.monotonic() - started, 1)
    report["worker_link_moved"] = moved
    report["worker_log"] = _worker_log(worker_pod.pid)
    report["pods"] = {
        "head": {"ip": HEAD_IP, "listening": _ss("-ltnH"), "connections": _ss("-tnH")},
        "worker": {
            "ip": WORKER_IP,
            "listening": _ss("-ltnH", worker_pod.pid),
            "connections": _ss("-tnH", worker_pod.pid),
        },
    }

    # A driver that sends a token, but not the cluster's: only the server can refuse it.
    stranger_env = {**driver_env, "RAY_AUTH_TOKEN": "not-the-cluster-token-" + "y" * 26}
    stranger = subprocess.run(
        [sys.executable, "-c", client], env=stranger_env, capture_output=True, text=True, timeout=180
    )
    report["wrong_token"] = {"returncode": stranger.returncode, "stderr": stranger.stderr[-1500:]}
    report["running"] = {"head": head_proc.poll() is None, "worker": worker_pod.poll() is None}
    print(json.dumps(report))


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2])
