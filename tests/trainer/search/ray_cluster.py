"""A real two-node Ray cluster for tests: a head and one more node, each a ``ray start --block`` process in its own
process session, in a temporary directory, with 1 CPU and a 100 MB object store each; stopped by process group.

Ray 2.60 listens on all interfaces and advertises the machine's address even with ``--node-ip-address=127.0.0.1``
(design notes §3b), so these nodes are only started inside a network namespace that holds nothing but loopback
(``unshare --net``, made by ``test_ray_executor.py``): there, every Ray address is 127.0.0.1 by construction, and
:func:`only_loopback_listens` checks it. Never a machine-wide ``ray stop``.
"""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

import psutil

RAY = str(Path(sys.executable).parent / "ray")
TRAINER = Path(__file__).resolve().parents[3] / "trainer"

#: Inside the test's own network namespace nothing outside can reach Ray; token auth (on by default in 2.60)
#: is switched off for this throwaway cluster only, explicitly. Ray prestarts a worker for a new driver on the
#: driver's node only, which would make the head start trials seconds before the other node and, with Tune's
#: actor reuse, take them all: off here, so both nodes start their first trial equally cold.
TEST_ENV = {"RAY_AUTH_MODE": "disabled", "RAY_USAGE_STATS_ENABLED": "0", "RAY_prestart_worker_first_driver": "0"}


#: Ray's temp dirs are /tmp/<this prefix>... (short: see :func:`short_temp_dir`); the outer test looks for leftovers.
TEMP_PREFIX = "hpo-ray-test-"


def in_private_netns() -> bool:
    """True when this process's network namespace has the loopback interface and nothing else."""
    return [name for _, name in socket.if_nameindex()] == ["lo"]


@dataclass
class Node:
    process: subprocess.Popen
    log: Path
    node_id: str = ""

    def kill(self) -> None:
        """SIGKILL the node's whole process group: raylet, its workers, agents (a node that dies, not one that
        is stopped)."""
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.process.pid, signal.SIGKILL)
        self.process.wait(timeout=30)


@dataclass
class RayCluster:
    address: str
    temp_dir: Path
    head: Node
    workers: list[Node] = field(default_factory=list)

    def stop(self) -> None:
        for node in [*self.workers, self.head]:
            node.kill()
        for process in psutil.process_iter(["pid", "cmdline"]):  # anything that left its group, by temp dir
            try:
                if any(str(self.temp_dir) in part for part in process.info["cmdline"] or []):
                    process.kill()
            except psutil.Error:
                pass


def _start(args: list[str], log: Path) -> Node:
    env = {**os.environ, **TEST_ENV, "PYTHONPATH": os.pathsep.join([str(TRAINER), os.environ.get("PYTHONPATH", "")])}
    handle = log.open("w")
    process = subprocess.Popen(
        [RAY, "start", "--block", "--disable-usage-stats", *args],
        stdout=handle,
        stderr=subprocess.STDOUT,
        env=env,
        start_new_session=True,
    )
    return Node(process, log)


def _alive_nodes(address: str) -> list[dict]:
    import ray

    ray.init(address=address, logging_level="ERROR", log_to_driver=False)
    try:
        return [n for n in ray.nodes() if n["Alive"]]
    finally:
        ray.shutdown()


def short_temp_dir() -> Path:
    """Ray's temp dir must be short: it holds AF_UNIX sockets, whose paths may not exceed 107 bytes (pytest's
    nested tmp paths do). Removed by :meth:`RayCluster.stop`'s caller."""
    return Path(tempfile.mkdtemp(prefix=TEMP_PREFIX, dir="/tmp"))


def start_cluster(temp_dir: Path, port: int, workers: int = 1, timeout: float = 120.0) -> RayCluster:
    common = ["--num-cpus=1", "--object-store-memory=100000000", f"--temp-dir={temp_dir}"]
    head = _start(
        ["--head", f"--port={port}", "--include-dashboard=false", "--node-ip-address=127.0.0.1", *common],
        temp_dir / "head.log",
    )
    address = f"127.0.0.1:{port}"
    cluster = RayCluster(address, temp_dir, head)
    try:
        _wait_for_port(cluster, port, timeout)
        _wait(cluster, 1, timeout)
        for index in range(workers):
            cluster.workers.append(
                _start(
                    [f"--address={address}", "--node-ip-address=127.0.0.1", *common],
                    temp_dir / f"worker{index}.log",
                )
            )
        nodes = _wait(cluster, 1 + workers, timeout)
    except BaseException:
        cluster.stop()
        raise
    head_ids = [n["NodeID"] for n in nodes if "node:__internal_head__" in n["Resources"]]
    head.node_id = head_ids[0]
    others = [n["NodeID"] for n in nodes if n["NodeID"] not in head_ids]
    for worker, node_id in zip(cluster.workers, others, strict=True):  # one worker in these tests
        worker.node_id = node_id
    return cluster


def _check_alive(cluster: RayCluster) -> None:
    for node in [cluster.head, *cluster.workers]:
        if node.process.poll() is not None:
            raise RuntimeError(f"ray start exited {node.process.returncode}: {node.log.read_text()[-2000:]}")


def _wait_for_port(cluster: RayCluster, port: int, timeout: float) -> None:
    """The head's GCS accepts connections (``ray.init`` against a head that died would wait for minutes)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        _check_alive(cluster)
        with socket.socket() as sock:
            sock.settimeout(1.0)
            if sock.connect_ex(("127.0.0.1", port)) == 0:
                return
        time.sleep(0.5)
    raise TimeoutError(f"the Ray head did not listen on port {port} within {timeout:.0f}s")


def _wait(cluster: RayCluster, count: int, timeout: float) -> list[dict]:
    deadline = time.monotonic() + timeout
    last: Exception | None = None
    while time.monotonic() < deadline:
        _check_alive(cluster)
        try:
            nodes = _alive_nodes(cluster.address)
            if len(nodes) >= count:
                return nodes
        except Exception as exc:  # the node is not registered yet
            last = exc
        time.sleep(1.0)
    raise TimeoutError(f"{count} Ray node(s) not alive after {timeout:.0f}s ({last})")


def listening_addresses() -> set[str]:
    """Local addresses of every listening TCP socket in this network namespace (``ss -ltn``)."""
    out = subprocess.run(["ss", "-Hltn"], capture_output=True, text=True, check=True).stdout
    return {line.split()[3].rsplit(":", 1)[0] for line in out.splitlines() if line.strip()}
