"""``resume_run_id``: an interrupted search continues in its own parent run; finished trials are not run again,
their results steer what comes next, interrupted ones are marked KILLED and rerun, and the search ends with exactly
``max_evals`` finished trials. The driver is really killed (SIGKILL of the search process) mid-search. The same
check for ``executor=ray`` runs on a real Ray cluster in ``ray_cluster_cases.py``."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
from airline_hpo.data.prepare import sample_rows
from airline_hpo.errors import TrainerError
from airline_hpo.model.engines import ForestParams
from airline_hpo.search import resume
from airline_hpo.search.driver import SearchConfig, run_search, search_space
from airline_hpo.search.trials import TrialOutcome
from hyperopt import fmin, tpe
from mlflow import MlflowClient


def _depth_loss(params: ForestParams) -> float:
    return 1.0 - params.max_depth / 20  # deeper is better in this made-up history


def test_rebuilt_trials_count_towards_max_evals_and_steer_tpe():
    config = SearchConfig(fpath="x", trees_max=50, depth_max=20)
    space = search_space(config, "sklearn")
    rng = np.random.default_rng(3)
    history = []
    for number in range(1, 13):
        params = ForestParams(
            n_estimators=int(rng.integers(1, 6)) * 10, max_depth=int(rng.integers(3, 21)),
            max_features=float(rng.uniform(0.2, 1.0)), min_samples_leaf=int(rng.integers(1, 21)),
            max_samples=float(rng.uniform(0.5, 1.0)), criterion=str(rng.choice(["gini", "entropy"])),
        )  # fmt: skip
        history.append(TrialOutcome(number, params, f"run{number}", ok=True, accuracy=1 - _depth_loss(params)))
    history.append(TrialOutcome(13, ForestParams(), "run13", ok=False, error="boom"))
    trials = resume.hyperopt_trials(space, history, config.criteria_list)
    assert len(trials.trials) == 13 and sorted(trials.losses()[:12]) == sorted(o.loss for o in history[:12])

    depths: list[int] = []

    def objective(sample):
        depths.append(int(sample["max_depth"]))
        return 1.0 - sample["max_depth"] / 20

    fmin(objective, space, algo=tpe.suggest, max_evals=23, trials=trials, rstate=np.random.default_rng(0),
         show_progressbar=False)  # fmt: skip
    assert len(depths) == 10  # max_evals counts the 13 earlier trials
    earlier = [o.params.max_depth for o in history[:12]]
    assert np.mean(depths) > np.mean(earlier) + 2, (depths, earlier)  # TPE went where the earlier losses were low


@pytest.fixture(scope="module")
def medium_airline(airline_table, tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("resume") / "airline.parquet"
    sample_rows(airline_table, 20_000, seed=4).to_parquet(path, index=False)
    return path


def _trials(client: MlflowClient, parent: str):
    experiment = client.get_run(parent).info.experiment_id
    return client.search_runs([experiment], f"tags.mlflow.parentRunId = '{parent}'", max_results=1000)


def _kill_search_after(args: list[str], env: dict[str, str], experiment: str, finished: int) -> str:
    """Run the search CLI as its own process, SIGKILL it once ``finished`` trials FINISHED; its parent run id."""
    client = MlflowClient()
    command = [sys.executable, "-m", "airline_hpo.search", *args]
    process = subprocess.Popen(command, env=env, start_new_session=True, stderr=subprocess.PIPE, text=True)
    deadline = time.monotonic() + 180
    try:
        while time.monotonic() < deadline:
            assert process.poll() is None, f"the search ended before it was killed: {process.stderr.read()[-2000:]}"
            exp = client.get_experiment_by_name(experiment)
            runs = client.search_runs([exp.experiment_id], max_results=1000) if exp else []
            if sum(r.info.status == "FINISHED" and "trial" in r.data.tags for r in runs) >= finished:
                break
            time.sleep(0.1)
        else:
            raise AssertionError("no trial finished in time")
    finally:
        os.killpg(process.pid, signal.SIGKILL)
        process.wait(timeout=30)
    exp = client.get_experiment_by_name(experiment)
    [parent] = [r for r in client.search_runs([exp.experiment_id]) if "mlflow.parentRunId" not in r.data.tags]
    return parent.info.run_id


ARGS = dict(max_evals=7, trees_max=150, depth_max=12, seed=21, engine="sklearn", model_name="none")


@pytest.mark.integration
def test_killed_in_process_search_resumes_without_rerunning_a_finished_trial(stack_env, medium_airline):
    cli = ["--fpath", str(medium_airline)]
    for key, value in ARGS.items():
        cli += [f"--{key.replace('_', '-')}", str(value)]
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(p for p in sys.path if p)}
    parent = _kill_search_after(cli, env, stack_env.experiment, 2)
    client = MlflowClient()
    runs = _trials(client, parent)
    before = {r.info.run_id: r for r in runs if r.info.status == "FINISHED"}
    interrupted = [r.info.run_id for r in runs if r.info.status == "RUNNING"]
    assert 2 <= len(before) < 7

    result = run_search(SearchConfig(fpath=str(medium_airline), resume_run_id=parent, **ARGS))
    assert result.parent_run_id == parent
    after = _trials(client, parent)
    finished = [r for r in after if r.info.status == "FINISHED"]
    assert len(finished) == 7 == len(result.outcomes)  # exactly max_evals, the earlier trials included
    for run_id, run in before.items():  # the same runs, untouched, and none of them ran again
        assert client.get_run(run_id).info.end_time == run.info.end_time
    old = {tuple(sorted(r.data.params.items())) for r in before.values()}
    new = [r for r in finished if r.info.run_id not in before]
    assert len(new) == 7 - len(before) and not {tuple(sorted(r.data.params.items())) for r in new} & old
    assert sorted(int(r.data.tags["trial"]) for r in finished) == sorted({int(r.data.tags["trial"]) for r in finished})
    for run_id in interrupted:  # the trial that was running when the driver died: KILLED, and it ran again
        killed = client.get_run(run_id)
        assert killed.info.status == "KILLED" and "resumed" in killed.data.tags["interrupted"]
    parent_run = client.get_run(parent)
    assert parent_run.info.status == "FINISHED" and "test_accuracy" in parent_run.data.metrics
    assert parent_run.data.tags["stop_reason"] == "max_evals: all 7 trials ran"
    assert parent_run.data.tags["resumed"].startswith(f"{len(before)} finished trials kept")
    assert parent_run.data.metrics["trials_ok"] == 7


@pytest.mark.integration
def test_resume_refuses_another_search_or_a_trial_run(stack_env, small_airline):
    first = run_search(SearchConfig(fpath=str(small_airline), max_evals=2, trees_max=10, depth_max=4,
                                    engine="sklearn", model_name="none"))  # fmt: skip
    other = SearchConfig(fpath=str(small_airline), max_evals=2, trees_max=20, depth_max=4, engine="sklearn",
                         model_name="none", resume_run_id=first.parent_run_id)  # fmt: skip
    with pytest.raises(TrainerError, match="was a different search \\(trees_max 10 vs 20\\)"):
        run_search(other)
    trial = first.outcomes[0].run_id
    same = SearchConfig(fpath=str(small_airline), max_evals=2, trees_max=10, depth_max=4, engine="sklearn",
                        model_name="none", resume_run_id=trial)  # fmt: skip
    with pytest.raises(TrainerError, match=f"run {trial} is a trial"):
        run_search(same)
    with pytest.raises(TrainerError, match="names no run"):
        run_search(SearchConfig(fpath=str(small_airline), resume_run_id="0" * 32, engine="sklearn"))
    assert len(_trials(MlflowClient(), first.parent_run_id)) == 2  # nothing was added to the finished search
