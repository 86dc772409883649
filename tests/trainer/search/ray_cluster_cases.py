"""``executor=ray`` on a real two-node Ray cluster against the real local stack, inside a network namespace.

Not collected by a plain ``pytest`` run (the name is not ``test_*``): ``test_ray_executor.py`` runs this module in
a fresh pytest inside ``unshare --net`` (loopback only), where this session starts its own local stack and Ray
nodes. Run by hand the same way: ``unshare --net sh -c 'ip link set lo up && .venv/bin/python -m pytest
tests/trainer/search/ray_cluster_cases.py'``. The cases share one cluster and run in file order; the last one kills
the worker node.
"""

from __future__ import annotations

import os
import re
import shutil
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from airline_hpo.data import storage
from airline_hpo.data.prepare import sample_rows
from airline_hpo.search.driver import SearchConfig, run_search
from mlflow import MlflowClient
from mlflow.entities import ViewType
from ray_cluster import (
    TEST_ENV,
    RayCluster,
    in_private_netns,
    listening_addresses,
    short_temp_dir,
    start_cluster,
)

pytestmark = pytest.mark.integration

LOOPBACK = {"127.0.0.1", "[::ffff:127.0.0.1]", "[::1]"}
#: Tune reuses a finished trial's worker for the next pending trial, even one whose own worker is still starting on
#: another node; on 2 busy cores a cold worker takes 5-8 s to start, so the first two trials must run longer than
#: that for the second node to get one. Seed 17 draws 270 and 200 trees of depth 14 and 13 first (TPE's random
#: start-up, same draws every run); later trials may be short: by then both nodes have a worker.
SPREAD = dict(trees_max=300, depth_max=14, seed=17, engine="sklearn", cpus_per_trial=1.0, executor="ray")


@pytest.fixture(scope="module")
def cluster() -> Iterator[RayCluster]:
    if not in_private_netns():
        pytest.fail("run this module inside `unshare --net` (test_ray_executor.py does): Ray must not leave loopback")
    from local_stack.processes import free_ports

    [port] = free_ports(1)
    temp_dir = short_temp_dir()
    cluster = start_cluster(temp_dir, port)
    try:
        yield cluster
    finally:
        cluster.stop()
        shutil.rmtree(temp_dir, ignore_errors=True)


@pytest.fixture
def ray_env(cluster: RayCluster, stack_env, monkeypatch: pytest.MonkeyPatch):
    monkeypatch.setenv("RAY_ADDRESS", cluster.address)
    for name, value in TEST_ENV.items():
        monkeypatch.setenv(name, value)
    return stack_env


def _trials(client: MlflowClient, parent: str):
    experiment = client.get_run(parent).info.experiment_id
    return client.search_runs([experiment], f"tags.mlflow.parentRunId = '{parent}'", max_results=1000)


def _overlap(a, b) -> bool:
    return a.info.start_time < b.info.end_time and b.info.start_time < a.info.end_time


def test_every_ray_listener_is_on_loopback(cluster: RayCluster):
    assert listening_addresses() <= LOOPBACK, listening_addresses()


@pytest.fixture(scope="module")
def medium_airline(airline_table, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """60,000 flights: a trial takes seconds. Tune's actor reuse gives a pending trial to a node whose worker is
    already up, so trials must outlast the seconds a cold worker takes to start on the other node."""
    path = tmp_path_factory.mktemp("medium") / "airline.parquet"
    sample_rows(airline_table, 60_000, seed=2).to_parquet(path, index=False)
    return path


def test_trials_run_on_both_nodes_at_once_and_the_champion_is_registered(ray_env, medium_airline, cluster):
    name = f"{ray_env.experiment}-ray"
    storage_uri = f"s3://{ray_env.bucket}/ray-tune"
    config = SearchConfig(
        fpath=str(medium_airline), max_evals=4, parallelism=2, model_name=name, ray_storage=storage_uri, **SPREAD
    )
    result = run_search(config)
    client = MlflowClient()
    runs = _trials(client, result.parent_run_id)
    finished = [r for r in runs if r.info.status == "FINISHED"]
    assert len(finished) == 4 == len(result.outcomes) and not result.failed
    nodes = {r.data.tags["ray.node_id"] for r in finished}
    assert nodes == {cluster.head.node_id, cluster.workers[0].node_id}
    assert all(r.data.tags["ray.node_ip"] == "127.0.0.1" for r in finished)
    across = [(a, b) for a in finished for b in finished if a.data.tags["ray.node_id"] < b.data.tags["ray.node_id"]]
    assert any(_overlap(a, b) for a, b in across), "no two trials on different nodes ran at the same time"
    assert sorted(int(r.data.tags["trial"]) for r in finished) == list(range(1, 5))
    for run in finished:  # the same record as in-process: params, validation metrics, engine tags
        assert {"val_accuracy", "val_roc_auc", "loss", "fit_seconds", "predict_seconds"} <= set(run.data.metrics)
        assert {"n_estimators", "max_depth", "criterion"} <= set(run.data.params)
        assert run.data.tags["engine"] == "sklearn" and run.data.tags["executor"] == "ray"
    parent = client.get_run(result.parent_run_id)
    assert parent.data.tags["executor"] == "ray" and "test_accuracy" in parent.data.metrics
    assert parent.data.tags["stop_reason"].startswith("max_evals")
    version = client.get_model_version_by_alias(name, "champion")
    assert version.run_id == result.parent_run_id
    bucket, prefix = storage.split_s3_uri(f"{storage_uri}/{result.parent_run_id}/")
    keys = [o["Key"] for o in storage.s3_client().list_objects_v2(Bucket=bucket, Prefix=prefix).get("Contents", [])]
    assert any(k.endswith(".json") or "experiment_state" in k for k in keys), keys  # Tune's state, in the bucket


def _search_command(fpath: Path, max_evals: int, extra: list[str]) -> list[str]:
    return [
        sys.executable, "-m", "airline_hpo.search", "--fpath", str(fpath), "--max-evals", str(max_evals),
        "--trees-max", "150", "--depth-max", "12", "--seed", "11", "--engine", "sklearn", "--model-name", "none",
        *extra,
    ]  # fmt: skip


def _kill_after_finished(command: list[str], env: dict[str, str], experiment: str, k: int) -> str:
    """Start the search as its own process, SIGKILL it (its whole group) once ``k`` trials FINISHED; returns the
    parent run id it had created."""
    client = MlflowClient()
    process = subprocess.Popen(command, env=env, start_new_session=True, stderr=subprocess.PIPE, text=True)
    deadline = time.monotonic() + 240
    try:
        while time.monotonic() < deadline:
            assert process.poll() is None, f"the search ended before it was killed: {process.stderr.read()[-2000:]}"
            exp = client.get_experiment_by_name(experiment)
            if exp is not None:
                runs = client.search_runs([exp.experiment_id], "tags.trial != ''", max_results=1000)
                if sum(r.info.status == "FINISHED" for r in runs) >= k:
                    break
            time.sleep(0.2)
        else:
            raise AssertionError("no trials finished in time")
    finally:
        os.killpg(process.pid, signal.SIGKILL)
        process.wait(timeout=30)
    exp = client.get_experiment_by_name(experiment)
    [parent] = client.search_runs([exp.experiment_id], "attributes.run_name LIKE 'hyperopt-%'")
    return parent.info.run_id


def test_driver_killed_mid_search_is_resumed_without_rerunning_a_finished_trial(ray_env, small_airline):
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(p for p in sys.path if p)}
    command = _search_command(small_airline, 8, ["--executor", "ray", "--parallelism", "2"])
    parent = _kill_after_finished(command, env, ray_env.experiment, 3)
    client = MlflowClient()
    before = {r.info.run_id: r for r in _trials(client, parent) if r.info.status == "FINISHED"}
    assert 3 <= len(before) < 8
    time.sleep(2)  # Ray ends the dead driver's trials; a trial's run may still have finished meanwhile
    before = {r.info.run_id: r for r in _trials(client, parent) if r.info.status == "FINISHED"}

    config = SearchConfig(
        fpath=str(small_airline), max_evals=8, trees_max=150, depth_max=12, seed=11, engine="sklearn",
        model_name="none", executor="ray", parallelism=2, resume_run_id=parent,
    )  # fmt: skip
    result = run_search(config)
    assert result.parent_run_id == parent
    after = _trials(client, parent)
    finished = [r for r in after if r.info.status == "FINISHED"]
    assert len(finished) == 8 and len(result.outcomes) == 8  # exactly max_evals, counting the earlier ones
    for run_id, run in before.items():  # the finished trials are the same runs, untouched
        again = client.get_run(run_id)
        assert again.info.status == "FINISHED" and again.info.end_time == run.info.end_time
    old_params = {tuple(sorted(r.data.params.items())) for r in before.values()}
    new = [r for r in finished if r.info.run_id not in before]
    assert len(new) == 8 - len(before)
    assert not {tuple(sorted(r.data.params.items())) for r in new} & old_params  # no finished trial ran again
    assert len({r.data.tags["trial"] for r in finished}) == 8
    assert all(r.info.status in {"FINISHED", "KILLED"} for r in after)  # interrupted trials marked, none RUNNING
    assert client.get_run(parent).data.tags["resumed"].startswith(f"{len(before)} finished trials kept")


def _parent_and_trials(client: MlflowClient, experiment: str):
    exp = client.get_experiment_by_name(experiment)
    runs = client.search_runs([exp.experiment_id], max_results=1000, run_view_type=ViewType.ALL)
    return [r for r in runs if "trial" not in r.data.tags], [r for r in runs if "trial" in r.data.tags]


@pytest.mark.parametrize(("sig", "code"), [(signal.SIGTERM, 143), (signal.SIGINT, 130)])
def test_a_signal_under_ray_ends_killed_with_the_resume_line(ray_env, small_airline, sig, code):
    """The signal contract of the in-process executor, under Ray: exit 143, the parent KILLED with its
    ``stop_reason``, the "resume with" line, no trial left RUNNING, and none of Ray's own SIGTERM handling
    (``ray.init`` installs a handler that exits 1 and a C++ handler that dumps a stack trace; Tune's SIGINT
    handler ends the Tune run and let the search go on to refit and register)."""
    client = MlflowClient()
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(p for p in sys.path if p)}
    command = _search_command(small_airline, 30, ["--executor", "ray", "--parallelism", "2"])
    process = subprocess.Popen(command, env=env, start_new_session=True, stderr=subprocess.PIPE, text=True)
    deadline = time.monotonic() + 240
    while time.monotonic() < deadline:
        assert process.poll() is None, process.stderr.read()[-2000:]
        exp = client.get_experiment_by_name(ray_env.experiment)
        runs = client.search_runs([exp.experiment_id], "tags.trial != ''", max_results=1000) if exp else []
        if any(r.info.status == "FINISHED" for r in runs):
            break
        time.sleep(0.2)
    process.send_signal(sig)
    _out, stderr = process.communicate(timeout=60)
    assert process.returncode == code, stderr[-3000:]
    assert "Traceback" not in stderr and "SIGTERM received" not in stderr, stderr[-3000:]
    lines = [ln.strip() for line in stderr.splitlines() for ln in line.split("\r") if ln.startswith("stopped by")]
    [parent], trials = _parent_and_trials(client, ray_env.experiment)
    # a trial whose run had just finished on a worker may not have reached Tune yet: at most that many
    finished = sum(t.info.status == "FINISHED" for t in trials)
    assert len(lines) == 1, stderr[-3000:]
    resume = f"resume with -P resume_run_id={parent.info.run_id}"
    match = re.fullmatch(rf"stopped by {sig.name} after (\d+) of 30 trials; {resume}", lines[0])
    assert match and 1 <= int(match.group(1)) <= finished < 30, lines
    assert parent.info.status == "KILLED" and parent.data.tags["stop_reason"] == f"signal {sig.name}"
    assert trials and not [t for t in trials if t.info.status == "RUNNING"]


def test_a_trial_no_node_can_hold_ends_the_search_instead_of_hanging(ray_env, small_airline):
    """``cpus_per_trial`` above every node's CPUs: Tune would keep the trial pending forever (an autoscaler may add
    a node, so a cluster gets ``AIRLINE_HPO_RAY_START_TIMEOUT`` seconds, 5 here); one line, the parent FAILED."""
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(p for p in sys.path if p), "AIRLINE_HPO_RAY_START_TIMEOUT": "5"}
    command = _search_command(small_airline, 4, ["--executor", "ray", "--cpus-per-trial", "4"])
    done = subprocess.run(command, env=env, capture_output=True, text=True, timeout=180)
    assert done.returncode == 1, done.stderr[-3000:]
    lines = [ln for ln in done.stderr.splitlines() if ln.startswith("error:")]
    assert len(lines) == 1 and "no trial could start within 5 s" in lines[0] and "CPU 4" in lines[0], lines
    [parent], trials = _parent_and_trials(MlflowClient(), ray_env.experiment)
    assert parent.info.status == "FAILED" and trials == []


def test_a_worker_node_killed_mid_search_leaves_a_finished_search(ray_env, medium_airline, cluster):
    """Last in this module: the worker node is gone afterwards."""
    client = MlflowClient()
    worker = cluster.workers[0]
    killed, done_searching = threading.Event(), threading.Event()
    in_flight: list[str] = []  # the trial runs RUNNING on the worker when it was killed

    def kill_worker_when_it_runs_a_trial() -> None:
        deadline = time.monotonic() + 240
        while time.monotonic() < deadline and not done_searching.is_set():
            exp = client.get_experiment_by_name(ray_env.experiment)
            runs = client.search_runs([exp.experiment_id], max_results=1000) if exp else []
            trials = [r for r in runs if "trial" in r.data.tags]
            on_worker = [r for r in trials if r.data.tags.get("ray.node_id") == worker.node_id]
            if any(r.info.status == "RUNNING" for r in on_worker) and any(r.info.status == "FINISHED" for r in trials):
                in_flight.extend(r.info.run_id for r in on_worker if r.info.status == "RUNNING")
                worker.kill()
                killed.set()
                return
            time.sleep(0.05)

    watcher = threading.Thread(target=kill_worker_when_it_runs_a_trial, daemon=True)
    watcher.start()
    config = SearchConfig(
        fpath=str(medium_airline), max_evals=4, model_name="none", parallelism=2, trial_retries=3, **SPREAD
    )  # fmt: skip
    try:
        result = run_search(config)
    finally:
        done_searching.set()
        watcher.join(timeout=5)
    runs = _trials(client, result.parent_run_id)
    seen = [(r.data.tags.get("ray.node_id", "")[:8], r.info.status) for r in runs]
    assert killed.is_set(), f"the worker node {worker.node_id[:8]} was never seen running a trial: {seen}"
    finished = [r for r in runs if r.info.status == "FINISHED"]
    lost = [r for r in runs if r.info.status == "KILLED"]
    assert len(finished) == 4 and not result.failed and result.stop_reason.startswith("max_evals")
    assert all(r.data.tags["ray.node_id"] == worker.node_id for r in lost)
    # each trial in flight on the worker at the kill either ended there just before it (trials take ~1 s) or was
    # lost: marked KILLED and run again, to the end, on the head
    by_id = {r.info.run_id: r for r in runs}
    cut_short = [by_id[i] for i in in_flight if by_id[i].info.status != "FINISHED"]
    assert all(r.info.status == "KILLED" for r in cut_short), seen
    retried = {r.data.tags["trial"] for r in cut_short}
    assert retried <= {r.data.tags["trial"] for r in finished}, "a lost trial was not run again"
    assert all(r.data.tags["ray.node_id"] == cluster.head.node_id for r in finished if r.data.tags["trial"] in retried)
