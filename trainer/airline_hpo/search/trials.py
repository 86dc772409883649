"""Trial execution behind a small interface, so the search does not care where a trial runs.

:class:`InProcessTrialRunner` fits in this process on data that was read and moved to the device once. A later
runner can submit each :class:`TrialSpec` as a Kubernetes Job and return the same :class:`TrialOutcome`; the
search loop, the nested runs' layout and the loss stay the same.

Each trial is one nested MLflow run (tag ``mlflow.parentRunId``) written with three calls (create, one batch of
params/metrics, terminate) and no model artifact: the seed logged a full model per trial, which costs more than
a small fit. A trial that raises is recorded as a FAILED run with the error as a tag, and the search goes on.
A trial fits on the split's train part and is scored on its validation part (``val_accuracy``, ``val_roc_auc``,
``loss``): no trial sees the test rows, which are kept to score the one model the search registers.

Those three calls take 60-80 ms each against a tracking server with a database behind it; on a 2-second fit
that alone would be an 8% overhead. They are made from one background thread, in order (create while the fit
runs, then params/metrics and the end status with the times measured in the trial), so the round trips overlap
with fitting. :meth:`InProcessTrialRunner.flush` waits for them; a tracking failure is raised there or at the
next trial, never lost.
"""

from __future__ import annotations

import os
import queue
import threading
import time
import traceback
import uuid
from concurrent.futures import Future
from concurrent.futures import wait as futures_wait
from dataclasses import dataclass, field
from functools import partial
from typing import Any, Protocol

import numpy as np
from mlflow import MlflowClient
from mlflow.entities import Metric, Param, RunTag
from mlflow.utils.mlflow_tags import MLFLOW_PARENT_RUN_ID, MLFLOW_RUN_NAME
from sklearn.metrics import accuracy_score, roc_auc_score

from airline_hpo.data.splits import Split
from airline_hpo.errors import EXIT_FAILED, TrainerError
from airline_hpo.lifecycle import outage, shutdown
from airline_hpo.lifecycle.journal import TRIAL_ID_TAG
from airline_hpo.model import objectives
from airline_hpo.model.engines import Engine, ForestParams


def _now_ms() -> int:
    return int(time.time() * 1000)


#: ``cpus_per_trial``'s default: every core in process (one trial at a time), one CPU per trial on Ray.
AUTO_CPUS = "auto"


def trial_cpus(executor: str, cpus_per_trial: float | str) -> float:
    """The CPUs one trial may use. Explicit values hold everywhere; ``auto`` is the machine's cores in process (a
    trial has the machine to itself) and 1 on Ray (``parallelism`` trials share a node, Tune reserves 1 each)."""
    if cpus_per_trial != AUTO_CPUS:
        return float(cpus_per_trial)
    return float(os.cpu_count() or 1) if executor == "inprocess" else 1.0


def trial_threads(executor: str, cpus_per_trial: float | str) -> int | None:
    """CPU threads per fit (scikit-learn ``n_jobs``, XGBoost ``nthread``): the trial's CPUs rounded down, at least
    one; None (every core) for ``auto`` in process."""
    if cpus_per_trial == AUTO_CPUS and executor == "inprocess":
        return None
    return max(1, int(trial_cpus(executor, cpus_per_trial)))


def trial_seed(seed: int, number: int) -> int:
    """Trial ``number``'s seed: a stream of its own from the search's ``seed`` (NumPy's ``SeedSequence`` of both),
    so trials differ from each other, a trial is the same whichever executor or worker runs it, and a resumed
    search's trial N gets the seed the interrupted one would have given it. 31 bits: every library takes it."""
    return int(np.random.SeedSequence([seed, number]).generate_state(1)[0] & 0x7FFFFFFF)


def loss_from_accuracy(accuracy: float) -> float:
    """1 - accuracy: the loss of a trial recorded before the objective was logged as ``loss`` (the seed returned
    accuracy itself as the loss and so searched for the worst model)."""
    return 1.0 - accuracy


@dataclass(frozen=True)
class TrialSpec:
    number: int
    params: ForestParams


@dataclass
class TrialOutcome:
    number: int
    params: ForestParams
    #: The trial's run id, or the pending creation of that run (resolved by the time the runner is flushed).
    run_ref: str | Future
    ok: bool
    #: Scores on the validation part (what the search compares; the test part is scored after the search).
    accuracy: float | None = None
    roc_auc: float | None = None
    fit_seconds: float = 0.0
    predict_seconds: float = 0.0
    wall_seconds: float = 0.0
    error: str | None = None
    #: What hyperopt minimizes: the objective on the validation part, oriented so that lower is better
    #: (:meth:`airline_hpo.model.objectives.Objective.loss`); None for a trial recorded without it.
    loss_value: float | None = None
    #: The fitted model, kept by in-process runners for the current best trial only (None for the others).
    model: Any = field(default=None, repr=False)

    @property
    def run_id(self) -> str:
        return self.run_ref if isinstance(self.run_ref, str) else self.run_ref.result()

    @property
    def loss(self) -> float | None:
        if self.loss_value is not None:
            return self.loss_value
        return None if self.accuracy is None else loss_from_accuracy(self.accuracy)

    @property
    def overhead_share(self) -> float:
        """Share of the trial's wall time not spent fitting or predicting (MLflow calls, scoring)."""
        if self.wall_seconds <= 0:
            return 0.0
        return max(0.0, self.wall_seconds - self.fit_seconds - self.predict_seconds) / self.wall_seconds


class TrialRunner(Protocol):
    def run(self, spec: TrialSpec) -> TrialOutcome: ...

    def flush(self, timeout: float | None = None) -> None:
        """Wait until every trial's record is written (raise if writing failed; ``timeout``: at most so long)."""


class _BackgroundWriter:
    """One daemon thread that runs tracking calls in submission order; failures surface in :meth:`check` and
    :meth:`flush`. A daemon thread (not a ``ThreadPoolExecutor``, whose workers the interpreter joins at exit)
    so that calls still retrying against a dead server never keep the process from exiting."""

    def __init__(self) -> None:
        self._queue: queue.SimpleQueue = queue.SimpleQueue()
        self._pending: list[Future] = []
        threading.Thread(target=self._work, name="trial-tracking", daemon=True).start()

    def _work(self) -> None:
        while True:
            future, fn, args, kwargs = self._queue.get()
            if not future.set_running_or_notify_cancel():
                continue
            try:
                future.set_result(outage.retry_glitches(partial(fn, *args, **kwargs)))
            except BaseException as exc:
                future.set_exception(exc)

    def submit(self, fn, *args, **kwargs) -> Future:
        future: Future = Future()
        self._queue.put((future, fn, args, kwargs))
        self._pending.append(future)
        return future

    def check(self) -> None:
        for future in [f for f in self._pending if f.done()]:
            self._pending.remove(future)
            self._result(future)

    def flush(self, timeout: float | None = None) -> None:
        deadline = None if timeout is None else time.monotonic() + timeout
        while self._pending:
            left = None if deadline is None else max(0.0, deadline - time.monotonic())
            futures_wait([self._pending[0]], timeout=left)
            if not self._pending[0].done():
                raise TimeoutError(f"{len(self._pending)} trial record(s) not written within {timeout:g} s")
            self._result(self._pending.pop(0))

    @staticmethod
    def _result(future: Future) -> None:
        """Re-raise a tracking failure in the search's thread as one line (exit 1): an outage that outlived the
        retry budget names the part of the stack that is down (:mod:`airline_hpo.lifecycle.outage`)."""
        try:
            future.result()
        except Exception as exc:
            if outage.is_outage(exc):
                import mlflow

                raise outage.down_error(mlflow.get_tracking_uri(), exc) from exc
            raise TrainerError(
                f"writing a trial run to the tracking server failed: {str(exc).splitlines()[0] if str(exc) else exc!r}",
                "check the MLflow server (its log, its database) and run the search again",
                exit_code=EXIT_FAILED,
            ) from exc


class InProcessTrialRunner:
    """Runs trials in this process; the split is moved to the engine's device once, here."""

    def __init__(
        self,
        engine: Engine,
        split: Split,
        seed: int,
        experiment_id: str,
        parent_run_id: str,
        client: MlflowClient | None = None,
        keep_best_model: bool = True,
        objective: str = objectives.DEFAULT,
    ) -> None:
        self.engine = engine
        self.objective = objectives.get(objective)
        self.seed = seed
        self.experiment_id = experiment_id
        self.parent_run_id = parent_run_id
        self.client = client or MlflowClient()
        # set_terminated() would print two "View run" lines per trial (wrecking the progress bar) and fetch the
        # run once more just to build that link; the search prints the parent run's link itself.
        os.environ["MLFLOW_SUPPRESS_PRINTING_URL_TO_STDOUT"] = "true"
        self.keep_best_model = keep_best_model
        # validation, never test: the test rows are kept for the refitted model alone
        self.x_train, self.y_train = engine.to_device(split.x_train, split.y_train)
        self.x_val, _ = engine.to_device(split.x_val)
        self.y_val = split.y_val
        self._best_loss = float("inf")
        self._best_outcome: TrialOutcome | None = None
        self._engine_tags = engine.tags()
        #: Tags added to every later trial's run (the Ray executor names the node a trial ran on).
        self.extra_tags: dict[str, str] = {}
        self._writer = _BackgroundWriter()
        # Under the search's guard (same parent): journal each trial and let a stop request find this runner.
        state = shutdown.STATE
        self._state = state if state.parent_run_id == parent_run_id else shutdown.SearchState()
        self._journal = self._state.journal
        if self._state is state:
            state.runner = self

    def run(self, spec: TrialSpec) -> TrialOutcome:
        started = time.perf_counter()
        self._writer.check()
        tags = {MLFLOW_PARENT_RUN_ID: self.parent_run_id, MLFLOW_RUN_NAME: f"trial-{spec.number:03d}"}
        seed = trial_seed(self.seed, spec.number)
        tags.update({"trial": str(spec.number), "trial.seed": str(seed), TRIAL_ID_TAG: uuid.uuid4().hex})
        tags.update({**self._engine_tags, **self.extra_tags})
        start = _now_ms()
        run_ref = self._writer.submit(self._create, tags, start)
        self._state.trial_started(run_ref)
        params = [Param(k, str(v)) for k, v in self.engine.logged_params(spec.params).items()]
        try:
            outcome, model = self._fit_and_score(spec, run_ref, seed)
        except Exception as exc:  # a failed trial is data, not the end of the search
            message = f"{type(exc).__name__}: {exc}"
            error_tags = [RunTag("error", message[:4000]), RunTag("error.traceback", traceback.format_exc()[-4000:])]
            self._record(tags, params, [], error_tags, "FAILED", start, _now_ms())
            self._writer.submit(self._finish, run_ref, params, [], error_tags, "FAILED", _now_ms())
            self._state.trial_ended()
            return TrialOutcome(
                spec.number, spec.params, run_ref, ok=False, error=message,
                wall_seconds=time.perf_counter() - started,
            )  # fmt: skip
        now = _now_ms()
        metrics = [
            Metric("val_accuracy", outcome.accuracy, now, 0),
            Metric("val_roc_auc", outcome.roc_auc, now, 0),
            *self._objective_metric(outcome, now),
            Metric("loss", outcome.loss, now, 0),
            Metric("fit_seconds", outcome.fit_seconds, now, 0),
            Metric("predict_seconds", outcome.predict_seconds, now, 0),
        ]
        self._record(tags, params, metrics, [], "FINISHED", start, now)
        self._writer.submit(self._finish, run_ref, params, metrics, [], "FINISHED", now)
        self._state.trial_ended()
        if self.keep_best_model and outcome.loss < self._best_loss:
            if self._best_outcome is not None:
                self._best_outcome.model = None  # keep one model in memory, not one per trial
            self._best_loss, self._best_outcome, outcome.model = outcome.loss, outcome, model
        outcome.wall_seconds = time.perf_counter() - started
        return outcome

    def _objective_metric(self, outcome: TrialOutcome, now: int) -> list[Metric]:
        """``val_<objective>`` beside ``val_accuracy`` and ``val_roc_auc`` when it is neither of them."""
        name = self.objective.name
        if name in ("accuracy", "roc_auc"):
            return []
        return [Metric(f"val_{name}", self.objective.from_loss(outcome.loss), now, 0)]

    def flush(self, timeout: float | None = None) -> None:
        self._writer.flush(timeout)
        if self._journal is not None:
            self._journal.discard()  # every record reached MLflow

    def _record(
        self,
        tags: dict[str, str],
        params: list[Param],
        metrics: list[Metric],
        extra_tags: list[RunTag],
        status: str,
        start: int,
        end: int,
    ) -> None:
        """Journal the finished trial before it is sent (see :mod:`airline_hpo.lifecycle.journal`)."""
        if self._journal is None:
            return
        self._journal.trial(
            tags[TRIAL_ID_TAG],
            {**tags, **{t.key: t.value for t in extra_tags}},
            {p.key: p.value for p in params},
            {m.key: m.value for m in metrics},
            status,
            start,
            end,
        )

    def _create(self, tags: dict[str, str], start: int) -> str:
        return self.client.create_run(self.experiment_id, start_time=start, tags=tags).info.run_id

    def _finish(
        self, run_ref: Future, params: list[Param], metrics: list[Metric], tags: list[RunTag], status: str, end: int
    ) -> None:
        run_id = run_ref.result()
        self.client.log_batch(run_id, metrics=metrics, params=params, tags=tags)
        self.client.set_terminated(run_id, status, end_time=end)

    def _fit_and_score(self, spec: TrialSpec, run_ref: Future, seed: int) -> tuple[TrialOutcome, Any]:
        params = spec.params.validate()
        t0 = time.perf_counter()
        model = self.engine.fit(params, self.x_train, self.y_train, seed)
        t1 = time.perf_counter()
        late_probability = self.engine.predict_late_probability(model, self.x_val)
        t2 = time.perf_counter()
        predicted = (late_probability > 0.5).astype(np.int32)  # ties go to class 0, as predict()'s argmax does
        outcome = TrialOutcome(
            spec.number,
            params,
            run_ref,
            ok=True,
            accuracy=float(accuracy_score(self.y_val, predicted)),
            roc_auc=float(roc_auc_score(self.y_val, late_probability)),
            loss_value=self.objective.loss(self.objective(self.y_val, late_probability)),
            fit_seconds=t1 - t0,
            predict_seconds=t2 - t1,
        )
        return outcome, model
