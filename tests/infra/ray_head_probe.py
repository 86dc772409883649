"""Start the declared Ray head the way KubeRay v1.7.0 starts it, inside a pod-like sandbox, and report what it does.

Run by `test_ray_head.py` as the first process of new user, network, mount and PID namespaces (`unshare`), after
the shell there has made the root filesystem read-only, mounted size-limited tmpfs on /tmp and /dev/shm (the
emptyDirs of the pod template) and given the network namespace one "pod IP" on a dummy interface (no route out of
the namespace exists: all traffic stays inside it). When this process exits, the kernel ends every process of the
PID namespace, Ray's included.

The command line is KubeRay's (`generateRayStartCommand`/`setMissingRayStartParams`/`convertParamMap` in
ray-operator/controllers/ray/common/pod.go): `ray start --head` plus the template's rayStartParams, plus
`--dashboard-host=0.0.0.0`, `--memory=<memory limit>` and `--block`, in sorted `--key=value` form. The env is the
container's literal env plus what KubeRay injects for `authOptions.mode: token` (`RAY_AUTH_MODE`, and
`RAY_AUTH_TOKEN` from the Secret). Prints one JSON object.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time

POD_IP = "10.244.0.10"
TOKEN = "probe-token-" + "x" * 36

_CLIENT = """
import json, os, socket, ray
ray.init("ray://{ip}:{port}")
@ray.remote(num_cpus=0)
def where():
    home = os.environ["HOME"]
    os.makedirs(home, exist_ok=True)
    open(os.path.join(home, "written"), "w").close()
    try:
        open("/opt/written", "w").close()
        root_writable = True
    except OSError:
        root_writable = False
    return {{"ip": ray.util.get_node_ip_address(), "root_writable": root_writable, "home": home}}
print("RESULT " + json.dumps(ray.get(where.remote())))
"""


def main(infra_dir: str) -> None:
    sys.path.insert(0, infra_dir)
    from mlflow_platform.config import parse
    from mlflow_platform.naming import Names
    from mlflow_platform.quantities import parse_bytes
    from mlflow_platform.ray_cluster import CLIENT_PORT, HEAD_CONTAINER, ray_cluster_manifest

    memory = "3Gi"
    cfg = parse({"aws:region": "us-east-1", "ray": "true", "rayImageTag": "probe", "rayHeadMemory": memory})
    spec = ray_cluster_manifest(cfg, Names(cfg.name_prefix, cfg.namespace), "image:probe", "http://t:5000")["spec"]
    head = spec["headGroupSpec"]
    (container,) = [c for c in head["template"]["spec"]["containers"] if c["name"] == HEAD_CONTAINER]
    env = {e["name"]: e["value"] for e in container["env"] if "value" in e}
    params = {
        **head["rayStartParams"],
        "dashboard-host": "0.0.0.0",
        "memory": str(int(parse_bytes(memory))),
        # Bounded here so the sandbox fits this machine; KubeRay leaves it to Ray (30% of the memory).
        "object-store-memory": str(200 * 2**20),
    }
    ray_bin = os.path.join(os.path.dirname(sys.executable), "ray")
    argv = [ray_bin, "start", "--head", "--block", *(f"--{k}={v}" for k, v in sorted(params.items()))]
    pod_env = {**os.environ, **env, "RAY_AUTH_MODE": "token", "RAY_AUTH_TOKEN": TOKEN}
    with open("/tmp/ray-head.log", "w") as log:
        head_proc = subprocess.Popen(argv, env=pod_env, stdout=log, stderr=subprocess.STDOUT)

    client = _CLIENT.format(ip=POD_IP, port=CLIENT_PORT)
    driver_env = {**os.environ, "RAY_AUTH_MODE": "token", "RAY_AUTH_TOKEN": TOKEN, "HOME": "/tmp/driver"}
    report: dict = {"argv": argv[2:], "read_only_root": not os.access("/opt", os.W_OK)}
    started = time.monotonic()
    with_token = None
    while time.monotonic() - started < 90 and head_proc.poll() is None:
        with_token = subprocess.run(
            [sys.executable, "-c", client], env=driver_env, capture_output=True, text=True, timeout=60
        )
        if with_token.returncode == 0:
            break
        time.sleep(2)
    assert with_token is not None
    results = [line[7:] for line in with_token.stdout.splitlines() if line.startswith("RESULT ")]
    report["with_token"] = json.loads(results[0]) if results else with_token.stderr[-2000:]
    report["seconds_to_first_task"] = round(time.monotonic() - started, 1)
    report["listening"] = subprocess.run(["ss", "-ltnpH"], capture_output=True, text=True).stdout.splitlines()

    # A client that sends a token, but not the cluster's: only the server can refuse it.
    stranger_env = {**driver_env, "RAY_AUTH_TOKEN": "not-the-cluster-token-" + "y" * 26}
    stranger = subprocess.run(
        [sys.executable, "-c", client], env=stranger_env, capture_output=True, text=True, timeout=90
    )
    report["wrong_token"] = {"returncode": stranger.returncode, "stderr": stranger.stderr[-1500:]}
    report["head_running"] = head_proc.poll() is None
    print(json.dumps(report))
    head_proc.terminate()


if __name__ == "__main__":
    main(sys.argv[1])
