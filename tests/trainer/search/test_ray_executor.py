"""``executor=ray`` against a real two-node Ray cluster, and the parts of it that need no cluster.

The cluster cases (:mod:`ray_cluster_cases`: trials on both nodes at once, a driver killed and resumed, a worker
node killed) run in a fresh pytest inside a network namespace this test makes (``unshare --net``, loopback only):
Ray 2.60 listens on every interface whatever ``--node-ip-address`` says (design notes §3b), and inside the namespace
the only interface is loopback. That session starts its own local stack and Ray nodes there and stops them; this
test then checks that none of their processes outlived it.
"""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path
from types import SimpleNamespace

import psutil
import pytest
from airline_hpo.errors import TrainerError
from airline_hpo.model.engines import ForestParams
from airline_hpo.search import ray_executor
from airline_hpo.search.driver import SearchConfig
from airline_hpo.search.trials import TrialOutcome
from ray_cluster import TEMP_PREFIX

HERE = Path(__file__).resolve().parent
REPO = HERE.parents[2]


@pytest.mark.integration
@pytest.mark.timeout(900)  # the inner session: its own stack (~20 s), two Ray nodes, seven searches (~7 min, busy)
def test_ray_executor_on_a_two_node_cluster_inside_a_network_namespace(tmp_path):
    unshare = shutil.which("unshare")
    assert unshare, "util-linux `unshare` is needed to keep the test's Ray cluster off the machine's network"
    basetemp = tmp_path / "inner"
    inner = (
        f"ip link set lo up && exec {sys.executable} -m pytest {HERE / 'ray_cluster_cases.py'} -x -q -rA "
        f"-p no:cacheprovider --basetemp={basetemp}"
    )
    result = subprocess.run(
        [unshare, "--net", "sh", "-c", inner], cwd=REPO, capture_output=True, text=True, timeout=850, check=False
    )
    output = result.stdout[-6000:] + result.stderr[-3000:]
    if "Operation not permitted" in result.stderr and result.returncode != 0:
        pytest.fail(f"`unshare --net` needs root or CAP_SYS_ADMIN here: {result.stderr.strip()[-300:]}")
    assert result.returncode == 0, output
    assert "7 passed" in result.stdout, output  # every cluster case ran: none skipped, none deselected
    left = []
    for process in psutil.process_iter(["pid", "cmdline"]):
        try:
            marks = (str(basetemp), f"/tmp/{TEMP_PREFIX}")
            if any(mark in part for part in process.info["cmdline"] or [] for mark in marks):
                left.append(process)
        except psutil.Error:
            continue
    for process in left:
        process.kill()
    assert not left, f"processes of the namespace's cluster or stack outlived it: {[p.pid for p in left]}"


@pytest.mark.parametrize(
    ("change", "words"),
    [
        ({"executor": "dask"}, "unknown executor 'dask'"),
        ({"parallelism": 0}, "parallelism must be at least 1"),
        ({"parallelism": 2}, "parallelism=2 needs executor=ray"),
        ({"executor": "ray", "cpus_per_trial": 0}, "cpus_per_trial must be positive"),
        ({"executor": "ray", "gpus_per_trial": -1}, "gpus_per_trial must be 0 or positive"),
        ({"executor": "ray", "gpus_per_trial": 1.5}, "neither a fraction of one GPU nor whole GPUs"),
        ({"executor": "ray", "trial_retries": -1}, "trial_retries must be 0 or positive"),
        ({"executor": "ray", "ray_storage": "/tmp/ray"}, "ray_storage must be auto, none or s3://"),
        ({"executor": "ray", "cpus_per_trial": float("nan")}, "cpus_per_trial must be a finite number"),
        ({"timeout_minutes": float("inf")}, "timeout_minutes must be a finite number"),
    ],
)
def test_bad_executor_settings_are_one_line_errors(change, words):
    with pytest.raises(TrainerError, match=words):
        SearchConfig(fpath="x", **change).validate()


def test_engine_and_gpus_per_trial_on_ray():
    """The driver may have no GPU: ``auto`` follows ``gpus_per_trial``; cuML gets a whole GPU unless told less."""
    assert ray_executor.engine_name(SearchConfig(fpath="x", executor="ray")) == "sklearn"
    assert ray_executor.engine_name(SearchConfig(fpath="x", executor="ray", gpus_per_trial=0.5)) == "cuml"
    assert ray_executor.gpus_per_trial(SearchConfig(fpath="x", executor="ray", engine="cuml")) == 1.0
    quarter = SearchConfig(fpath="x", executor="ray", engine="cuml", gpus_per_trial=0.25)
    assert ray_executor.gpus_per_trial(quarter) == 0.25
    engine = ray_executor.driver_engine(SearchConfig(fpath="x", executor="ray", engine="cuml"))
    assert engine.name == "cuml" and engine.tags()["engine"] == "cuml"  # built without importing RAPIDS


def test_tune_state_goes_to_the_data_bucket_by_default():
    assert ray_executor.storage_uri("auto", "s3://data-bucket/datasets/a.parquet") == "s3://data-bucket/ray-tune"
    assert ray_executor.storage_uri("auto", "/tmp/a.parquet") is None
    assert ray_executor.storage_uri("none", "s3://b/a.parquet") is None
    assert ray_executor.storage_uri("s3://other/prefix/", "/tmp/a.parquet") == "s3://other/prefix"


def _trial(trial_id: str, loss: float | None = None, number: int = 0) -> SimpleNamespace:
    return SimpleNamespace(trial_id=trial_id, last_result={} if loss is None else {"loss": loss, "number": number})


def test_budget_stopper_counts_failures_and_trials_without_progress_including_resumed_ones():
    """Tune's side of ``max_failed`` and ``early_stop``: what ends the search early, with the same reasons as
    in-process; a resumed search's earlier trials count."""
    earlier = [
        TrialOutcome(1, ForestParams(), "r1", ok=True, accuracy=0.7),
        TrialOutcome(2, ForestParams(), "r2", ok=False),
    ]
    stopper = ray_executor.BudgetStopper(max_failed=3, early_stop=0, previous=earlier, progress=None)
    stopper.on_trial_start(0, [], _trial("a"))
    stopper.on_trial_error(0, [], _trial("a"))
    assert not stopper.stop_all()
    stopper.on_trial_error(0, [], _trial("b"))
    assert stopper.stop_all() and stopper.reason == "max_failed: 3 trials failed (limit 3)"

    stopper = ray_executor.BudgetStopper(max_failed=0, early_stop=2, previous=earlier, progress=None)
    for trial_id, loss, number in (("a", 0.25, 3), ("b", 0.31, 4)):  # the earlier best loss is 0.30
        stopper.on_trial_start(0, [], _trial(trial_id))
        stopper.on_trial_complete(0, [], _trial(trial_id, loss, number))
    assert not stopper.stop_all()  # one trial without progress since 0.25
    stopper.on_trial_start(0, [], _trial("c"))
    stopper.on_trial_complete(0, [], _trial("c", 0.32, 5))
    assert stopper.stop_all() and stopper.reason == "early_stop: no lower validation loss in 2 trials"
    assert set(stopper.trial_wall) == {3, 4, 5}  # driver-side wall per trial number (the benchmark's)
