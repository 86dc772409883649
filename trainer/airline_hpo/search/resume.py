"""Resume an interrupted search (``resume_run_id=<parent run id>``) from what MLflow recorded, for both executors.

MLflow is the record of which trials finished: each trial's nested run is terminated (FINISHED with its ``loss``,
or FAILED with its error) only after the trial's work is done, whereas a scheduler's own snapshot (hyperopt's
``trials_save_file``, Ray Tune's experiment state) is written on its own schedule and can lag behind a driver
that was killed. So a resumed search:

- keeps every finished trial (FINISHED or FAILED nested run; one per ``trial`` number, a FINISHED run winning over
  failed attempts of the same trial): they are not run again, count towards ``max_evals`` and the budgets, and
  are given to the search algorithm as done (:func:`hyperopt_trials`), so their losses steer what comes next;
- marks trials that were still RUNNING when the driver died as KILLED (tag ``interrupted``): they run again,
  within ``max_evals``, under a new trial number;
- refuses a parent run whose search-defining params differ from this invocation's, a run of another experiment,
  and a run that is not a search's parent (one line, exit 2, before anything is written).
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

import numpy as np
from hyperopt import JOB_STATE_DONE, STATUS_FAIL, STATUS_OK, Domain, Trials
from mlflow import MlflowClient
from mlflow.entities import Run

from airline_hpo.errors import TrainerError
from airline_hpo.model.engines import ForestParams
from airline_hpo.search.trials import TrialOutcome

#: ``resume_run_id`` value meaning "start a new search" (a word: values must need no shell quoting).
NO_RESUME = "none"

#: Params of the parent run that must match for the earlier trials to be part of this search.
SEARCH_PARAMS = (
    "fpath",
    "max_rows",
    "split",
    "seed",
    "test_size",
    "val_size",
    "features",
    "engine",
    "algo",
    "trees_max",
    "depth_max",
    "leaf_max",
    "max_samples_min",
    "criteria",
)


def wants_resume(resume_run_id: str) -> bool:
    return resume_run_id.strip().lower() not in {NO_RESUME, ""}


def _same(logged: str, value: object) -> bool:
    try:
        return float(logged) == float(value)  # type: ignore[arg-type]
    except (TypeError, ValueError):
        return logged == str(value)


def parent_run(client: MlflowClient, run_id: str, experiment_id: str | None = None) -> Run:
    """The run to resume; a one-line error when it does not exist or is a trial rather than a search."""
    from mlflow.exceptions import MlflowException

    try:
        run = client.get_run(run_id)
    except MlflowException as exc:
        raise TrainerError(
            f"resume_run_id {run_id} names no run on this tracking server",
            "pass the parent run id printed by the interrupted search (or resume_run_id=none to start anew)",
        ) from exc
    if "mlflow.parentRunId" in run.data.tags:
        raise TrainerError(
            f"run {run_id} is a trial (nested run), not a search",
            f"pass its parent run id {run.data.tags['mlflow.parentRunId']}",
        )
    if experiment_id is not None and run.info.experiment_id != experiment_id:
        raise TrainerError(
            f"resume_run_id {run_id} is a run of experiment {run.info.experiment_id}, not of this search's "
            f"experiment {experiment_id}",
            "set MLFLOW_EXPERIMENT_NAME/ID to the experiment of the interrupted search, or pass its parent run id",
        )
    if not is_search(run):
        name = run.data.tags.get("mlflow.runName", "")
        raise TrainerError(
            f"resume_run_id {run_id} is not a search's parent run (run {name!r} has no search tags)",
            "pass the parent run id printed by the interrupted search (or resume_run_id=none to start anew)",
        )
    return run


#: Every search's parent run has this tag from its first moment (the run name is set when the run is created).
SEARCH_RUN_PREFIX = "hyperopt-"


def is_search(run: Run) -> bool:
    """A parent run the ``hyperopt`` entry point created (its run name), or one it already tagged as a search."""
    return run.data.tags.get("mlflow.runName", "").startswith(SEARCH_RUN_PREFIX) or "search.algo" in run.data.tags


def check_same_search(run: Run, params: Mapping[str, Any]) -> None:
    """Refuse to mix trials of different searches: the data, split and space must be the ones logged."""
    logged = run.data.params
    differ = [
        f"{k} {logged[k]} vs {params[k]}"
        for k in SEARCH_PARAMS
        if k in logged and k in params and not _same(logged[k], params[k])
    ]
    if differ:
        raise TrainerError(
            f"run {run.info.run_id} was a different search ({', '.join(differ)})",
            "resume with the same parameters as the interrupted search, or start a new one (resume_run_id=none)",
        )


def _outcome(run: Run) -> TrialOutcome:
    """A trial as the search knows it, rebuilt from its nested run's params, metrics and tags."""
    params = ForestParams.from_mapping(run.data.params)
    metrics = run.data.metrics
    number = int(run.data.tags.get("trial", "0"))
    if run.info.status == "FINISHED" and "val_accuracy" in metrics:
        return TrialOutcome(
            number,
            params,
            run.info.run_id,
            ok=True,
            accuracy=metrics["val_accuracy"],
            roc_auc=metrics.get("val_roc_auc"),
            loss_value=metrics.get("loss"),
            fit_seconds=metrics.get("fit_seconds", 0.0),
            predict_seconds=metrics.get("predict_seconds", 0.0),
        )
    error = run.data.tags.get("error", f"run ended {run.info.status} without metrics")
    return TrialOutcome(number, params, run.info.run_id, ok=False, error=error)


def nested_runs(client: MlflowClient, experiment_id: str, parent_run_id: str) -> list[Run]:
    runs: list[Run] = []
    token = None
    while True:
        page = client.search_runs(
            [experiment_id],
            f"tags.mlflow.parentRunId = '{parent_run_id}'",
            max_results=1000,
            page_token=token,
        )
        runs.extend(page)
        token = page.token
        if not token:
            return runs


def kill_running(client: MlflowClient, runs: Iterable[Run], why: str) -> int:
    """Mark trials whose process is gone (RUNNING forever otherwise) as KILLED; returns how many."""
    killed = 0
    os.environ["MLFLOW_SUPPRESS_PRINTING_URL_TO_STDOUT"] = "true"  # no "View run" line per marked trial
    for run in runs:
        if run.info.status == "RUNNING":
            client.set_tag(run.info.run_id, "interrupted", why)
            client.set_terminated(run.info.run_id, "KILLED")
            killed += 1
    return killed


def finished_trials(client: MlflowClient, experiment_id: str, parent_run_id: str) -> tuple[list[TrialOutcome], int]:
    """The trials of ``parent_run_id`` that finished (ok or failed), one per trial number in number order, and how
    many interrupted ones were marked KILLED."""
    runs = nested_runs(client, experiment_id, parent_run_id)
    killed = kill_running(client, runs, f"driver of search {parent_run_id} died; resumed")
    by_number: dict[int, TrialOutcome] = {}
    for run in runs:
        if run.info.status not in {"FINISHED", "FAILED"}:
            continue
        outcome = _outcome(run)
        known = by_number.get(outcome.number)
        if known is None or (outcome.ok and not known.ok):
            by_number[outcome.number] = outcome
    return [by_number[n] for n in sorted(by_number)], killed


def search_seed(seed: int, finished: int) -> int:
    """The search's random stream: ``seed`` itself for a new search; for a resumed one a stream of its own (from
    ``seed`` and the number of finished trials), else the random start-up would draw the first trials' values
    again and run finished configurations a second time."""
    if finished == 0:
        return seed
    return int(np.random.SeedSequence([seed, finished]).generate_state(1)[0] & 0x7FFFFFFF)


def _hyperopt_value(label: str, params: ForestParams, criteria: Sequence[str]) -> Any:
    value = getattr(params, label)
    return criteria.index(value) if label == "criterion" else value  # hp.choice stores the index


def hyperopt_trials(space: dict[str, Any], outcomes: Sequence[TrialOutcome], criteria: Sequence[str]) -> Trials:
    """hyperopt ``Trials`` holding ``outcomes`` as completed trials (hyperopt's documented ``new_trial_docs`` +
    ``insert_trial_docs`` + ``refresh``), so TPE models their losses and ``max_evals`` counts them."""
    trials = Trials()
    if not outcomes:
        return trials
    labels = list(Domain(lambda s: s, space).params)  # the dimensions that vary (fixed ones have no label)
    tids = trials.new_trial_ids(len(outcomes))
    results, miscs = [], []
    for tid, outcome in zip(tids, outcomes, strict=True):
        results.append({"status": STATUS_OK, "loss": outcome.loss} if outcome.ok else {"status": STATUS_FAIL})
        miscs.append(
            {
                "tid": tid,
                "cmd": ("domain_attachment", "FMinIter_Domain"),
                "workdir": None,
                "idxs": {label: [tid] for label in labels},
                "vals": {label: [_hyperopt_value(label, outcome.params, criteria)] for label in labels},
            }
        )
    docs = trials.new_trial_docs(tids, [None] * len(tids), results, miscs)
    for doc in docs:
        doc["state"] = JOB_STATE_DONE
    trials.insert_trial_docs(docs)
    trials.refresh()
    return trials
