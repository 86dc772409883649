"""``executor=ray``: the same search run by Ray Tune, trials in parallel on a Ray cluster (KubeRay) or a local Ray.

What stays the same as in-process (:mod:`airline_hpo.search`): the split (made once, on the driver), the search
space and seed (Ray's ``HyperOptSearch`` wraps hyperopt's TPE; ``algo=rand`` is TPE whose random start-up covers
the whole budget), the trial's work and its nested run (each trial runs an :class:`InProcessTrialRunner` on its
worker: same params, metrics and tags, plus ``ray.node_id``, ``ray.node_ip``, ``ray.trial_id``), the budgets, and
the refit/registration/promotion that follow. What Ray adds:

- ``parallelism`` trials in flight (``ConcurrencyLimiter``), each reserving ``cpus_per_trial`` CPUs and
  ``gpus_per_trial`` GPUs (fractions share a GPU);
- the train and validation rows are put in Ray's object store once (``tune.with_parameters``), not re-read;
- a trial that raises or whose node dies is retried up to ``trial_retries`` times (``FailureConfig``) and then
  counts as a failed trial; nested runs left RUNNING by a lost attempt are marked KILLED at the end;
- ``max_failed`` and ``early_stop`` are a Tune stopper, ``timeout_minutes`` is Tune's ``time_budget_s`` (it stops
  running trials too; in-process checks between trials);
- Tune's experiment state goes to ``ray_storage`` (``s3://bucket/prefix``; ``auto``: the data's bucket) under
  the parent run's id. Resume (:mod:`airline_hpo.search.resume`) rebuilds from MLflow, not from that snapshot: MLflow
  records each trial when it ends, Tune's snapshot lags by up to its checkpoint period, so a restore could rerun
  a trial that had finished.

The driver connects to ``RAY_ADDRESS`` when set (a KubeRay head), else starts a local Ray. It needs no GPU: with
``engine=cuml`` the workers fit, and the refit runs as a Ray task with the trial's resources.
"""

from __future__ import annotations

import contextlib
import dataclasses
import math
import os
import signal
import sys
import tempfile
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from ray.tune import Callback, Stopper
from ray.tune.search import Searcher

from airline_hpo.data import splits, storage
from airline_hpo.errors import EXIT_FAILED, TrainerError
from airline_hpo.lifecycle import shutdown
from airline_hpo.model.engines import CumlEngine, Engine, ForestParams, SklearnEngine, make_engine
from airline_hpo.search import resume
from airline_hpo.search.refit import refit_and_test
from airline_hpo.search.trials import InProcessTrialRunner, TrialOutcome, TrialSpec, trial_cpus, trial_threads

#: The trial number rides in the trial's config under this key (hyperopt's tid + offset; stable across retries).
NUMBER_KEY = "_trial_number"

#: Variables a trial needs to reach the tracking server, passed from the driver through the object store (not as
#: runtime_env variables, which Ray keeps in its job table and dashboard).
TRACKING_ENV = (
    "MLFLOW_TRACKING_URI",
    "MLFLOW_TRACKING_USERNAME",
    "MLFLOW_TRACKING_PASSWORD",
    "MLFLOW_TRACKING_TOKEN",
    "MLFLOW_TRACKING_INSECURE_TLS",
    "MLFLOW_TRACKING_SERVER_CERT_PATH",
)


def engine_name(config: Any) -> str:
    """With Ray the driver may have no GPU, so ``auto`` cannot look for one here: it means cuML when trials get
    GPUs (``gpus_per_trial`` > 0), scikit-learn otherwise."""
    if config.engine == "auto":
        return "cuml" if config.gpus_per_trial > 0 else "sklearn"
    return config.engine


def gpus_per_trial(config: Any) -> float:
    """cuML needs a GPU in every trial: one whole GPU unless a fraction was asked for."""
    if engine_name(config) == "cuml":
        return config.gpus_per_trial if config.gpus_per_trial > 0 else 1.0
    return config.gpus_per_trial


class _CumlOnWorkers(CumlEngine):
    """cuML as the driver sees it: names, params and tags, without importing RAPIDS (the driver has no GPU)."""

    def __init__(self, threads: int | None = None, family: str = "random_forest") -> None:
        self.threads, self.family = threads, family  # the workers import cuDF/cuML; the driver never does

    def tags(self) -> dict[str, str]:
        library = "xgboost" if self.family == "xgboost" else "cuml"
        return {
            "engine": self.name,
            "engine.library": library,
            "model.family": self.family,
            "device": "gpu: Ray workers",
        }


def driver_engine(config: Any) -> Engine:
    threads = trial_threads(config.executor, config.cpus_per_trial)
    engine = _CumlOnWorkers if engine_name(config) == "cuml" else SklearnEngine
    return engine(threads, config.family)


# ---------------------------------------------------------------------------------------------------- connection


@contextlib.contextmanager
def connected(cpus: int | None = None) -> Iterator[dict[str, float]]:
    """Ray for the duration of the search: the cluster named by ``RAY_ADDRESS``, or a local one started here (and
    stopped on exit). Yields the cluster's resources. Workers import this package, so a local Ray gets its path."""
    import ray

    address = os.environ.get("RAY_ADDRESS", "").strip()
    package_root = str(Path(__file__).resolve().parents[1])
    if not address:
        paths = [p for p in os.environ.get("PYTHONPATH", "").split(os.pathsep) if p]
        if package_root not in paths:  # local workers inherit the driver's environment
            os.environ["PYTHONPATH"] = os.pathsep.join([package_root, *paths])
    try:
        ray.init(
            address=address or None,
            num_cpus=None if address else cpus,
            include_dashboard=False,
            log_to_driver=False,
            logging_level="WARNING",
            configure_logging=True,
        )
    except SystemExit as exc:  # SIGTERM while Ray started: its own handler exits; ours records the stop instead
        if shutdown.installed() and exc.code == signal.SIGTERM:
            shutdown.reclaim()
            shutdown.note(signal.SIGTERM)
            raise shutdown.StopRequested("SIGTERM") from None
        raise
    except (ConnectionError, RuntimeError) as exc:
        where = f"the Ray cluster at RAY_ADDRESS={address}" if address else "a local Ray"
        raise TrainerError(
            f"cannot connect to {where} ({str(exc).splitlines()[0] if str(exc) else type(exc).__name__})",
            "check RAY_ADDRESS (the stack output, e.g. ray://... or host:6379) and the Ray auth token, "
            "or unset RAY_ADDRESS to start a local Ray",
        ) from exc
    shutdown.reclaim()  # ray.init took SIGTERM: the search's stop contract needs it back (exit 143, KILLED)
    try:
        yield ray.cluster_resources()
    finally:
        ray.shutdown()


# ---------------------------------------------------------------------------------------------------- the trial


@dataclass(frozen=True)
class Payload:
    """What every trial needs, put in the object store once: the train and validation rows (never test)."""

    split: splits.Split
    engine_name: str
    seed: int
    n_streams: int
    experiment_id: str
    parent_run_id: str
    tracking_env: dict[str, str]
    objective: str = "log_loss"
    #: CPU threads per fit (``cpus_per_trial``) and the model family
    threads: int | None = 1
    family: str = "random_forest"


_RUNNERS: dict[tuple[str, str], InProcessTrialRunner] = {}


def _runner(payload: Payload) -> InProcessTrialRunner:
    """One runner per worker process and search: a reused actor keeps its engine and device copy of the data."""
    key = (payload.parent_run_id, payload.engine_name)
    if key not in _RUNNERS:
        _RUNNERS.clear()
        os.environ.update(payload.tracking_env)
        engine = make_engine(payload.engine_name, payload.threads, payload.family)
        _RUNNERS[key] = InProcessTrialRunner(
            engine,
            payload.split,
            payload.seed,
            payload.experiment_id,
            payload.parent_run_id,
            keep_best_model=False,
            objective=payload.objective,
        )
    return _RUNNERS[key]


def run_trial(config: dict[str, Any], payload: Payload) -> None:
    """Tune's function trainable: one trial, one nested run, one report (``loss`` is what TPE minimizes). A trial
    that fails raises after its FAILED run is written, so Tune retries it (``FailureConfig``)."""
    import ray
    from ray import tune

    runner = _runner(payload)
    context = ray.get_runtime_context()
    trial_id = tune.get_context().get_trial_id()
    runner.extra_tags = {
        "executor": "ray",
        "ray.node_id": context.get_node_id(),
        "ray.node_ip": ray.util.get_node_ip_address(),
        "ray.trial_id": trial_id,
    }
    number = int(config[NUMBER_KEY])
    params = ForestParams.from_mapping({"n_streams": payload.n_streams, **config})
    started = time.perf_counter()
    outcome = runner.run(TrialSpec(number, params))
    runner.flush()
    if not outcome.ok:
        raise RuntimeError(f"trial {number} failed: {outcome.error}")
    tune.report(
        {
            "loss": outcome.loss,
            "val_accuracy": outcome.accuracy,
            "val_roc_auc": outcome.roc_auc,
            "fit_seconds": outcome.fit_seconds,
            "predict_seconds": outcome.predict_seconds,
            "trial_seconds": time.perf_counter() - started,
            "run_id": outcome.run_id,
            "number": number,
        }
    )


# ---------------------------------------------------------------------------------------------------- the driver


def _numbered_searcher(space: dict[str, Any], config: Any, previous: Sequence[TrialOutcome]):
    """Ray's HyperOptSearch over our space and seed, knowing the earlier trials (resume), and numbering trials.

    Ray 2.60's HyperOptSearch can re-evaluate given points but cannot be told their results, so its hyperopt
    ``Trials`` (``_hpopt_trials``) is replaced by one rebuilt from MLflow (:func:`resume.hyperopt_trials`)."""
    from ray.tune.search.hyperopt import HyperOptSearch

    offset = max((o.number for o in previous), default=0) - len(previous)
    startup = config.max_evals if config.algo == "rand" else min(20, max(3, config.max_evals // 4))

    class NumberedHyperOptSearch(HyperOptSearch):
        def suggest(self, trial_id: str) -> dict[str, Any] | None:
            suggested = super().suggest(trial_id)
            if isinstance(suggested, dict):
                tid = self._live_trial_mapping[trial_id][0]
                suggested[NUMBER_KEY] = offset + tid + 1
            return suggested

    searcher = NumberedHyperOptSearch(
        space=space,
        metric="loss",
        mode="min",
        n_initial_points=startup,
        random_state_seed=resume.search_seed(config.seed, len(previous)),
    )
    searcher._hpopt_trials = resume.hyperopt_trials(space, previous, config.criteria_list)
    return searcher


class BudgetStopper(Stopper, Callback):
    """``max_failed`` and ``early_stop`` for Tune: a stopper (sees results) that is also a callback (sees errors).
    Counts the resumed search's earlier trials too, like hyperopt's ``Trials`` does in-process."""

    def __init__(self, max_failed: int, early_stop: int, previous: Sequence[TrialOutcome], progress: Any) -> None:
        super().__init__()
        self.max_failed, self.early_stop, self.progress = max_failed, early_stop, progress
        self.failed = sum(not o.ok for o in previous)
        self.best = min((o.loss for o in previous if o.ok), default=math.inf)
        self.since_best = 0
        self.reason: str | None = None
        self.trial_started: dict[str, float] = {}
        self.trial_wall: dict[int, float] = {}
        #: Seconds the search waits for its first trial to start (None: no limit); why it gave up waiting.
        self.start_timeout: float | None = None
        self.starved: str | None = None
        self.created = time.monotonic()

    # Tune stopper
    def __call__(self, trial_id: str, result: dict[str, Any]) -> bool:
        return False  # a trial reports once and ends by itself

    def stop_all(self) -> bool:
        """A budget ran out, SIGTERM/SIGINT asked to stop (Tune's loop polls this even while trials wait for
        resources), or no trial could start within the start timeout."""
        waited = time.monotonic() - self.created
        limit = self.start_timeout
        if self.starved is None and limit is not None and not self.trial_started and waited > limit:
            self.starved = f"no trial could start within {limit:g} s"
        return self.reason is not None or self.starved is not None or shutdown.requested() is not None

    def _step(self, loss: float | None) -> None:
        if loss is not None and loss < self.best:
            self.best, self.since_best = loss, 0
        else:
            self.since_best += 1
        if self.max_failed and self.failed >= self.max_failed:
            self.reason = f"max_failed: {self.failed} trials failed (limit {self.max_failed})"
        elif self.early_stop and self.since_best >= self.early_stop:
            self.reason = f"early_stop: no lower validation loss in {self.early_stop} trials"
        best = "-" if math.isinf(self.best) else f"{self.best:.4f}"
        if self.progress is not None:
            self.progress.set_postfix_str(f"best validation loss {best}, failed {self.failed}", refresh=False)
            self.progress.update(1)

    def __getstate__(self) -> dict[str, Any]:
        """Tune pickles its run config into the experiment state; the progress bar stays with the driver."""
        return {**self.__dict__, "progress": None}

    # Tune callback
    def on_trial_start(self, iteration: int, trials: list, trial: Any, **_info: Any) -> None:
        self.trial_started.setdefault(trial.trial_id, time.perf_counter())

    def on_trial_complete(self, iteration: int, trials: list, trial: Any, **_info: Any) -> None:
        result = trial.last_result or {}
        if "loss" not in result:
            return  # stopped before it reported (a budget ended the search)
        self.trial_wall[int(result["number"])] = time.perf_counter() - self.trial_started[trial.trial_id]
        self._step(float(result["loss"]))

    def on_trial_error(self, iteration: int, trials: list, trial: Any, **_info: Any) -> None:
        self.failed += 1
        self._step(None)


def storage_uri(ray_storage: str, fpath: str) -> str | None:
    """Where Tune keeps its experiment state. ``auto``: the bucket the data comes from (``s3://<bucket>/ray-tune``,
    the stack's bucket on a cluster) when ``fpath`` is on S3, else a local temporary directory; ``none``: local.
    Trials write no checkpoints, so trials on other nodes need no shared storage; the bucket keeps the state
    (results, searcher state, errors) of a search for inspection after the driver is gone."""
    if ray_storage == "auto":
        return f"s3://{storage.split_s3_uri(fpath)[0]}/ray-tune" if storage.is_s3(fpath) else None
    if ray_storage in {"none", ""}:
        return None
    if not storage.is_s3(ray_storage):
        raise TrainerError(f"ray_storage must be auto, none or s3://... (got {ray_storage})", "e.g. s3://BUCKET/ray")
    return ray_storage.rstrip("/")


def _storage(uri: str | None, parent_run_id: str, local_dir: str) -> dict[str, Any]:
    """Tune's ``storage_path`` under the parent run's id, through pyarrow's S3 filesystem and the same endpoint
    variables as the data loader; without S3 a temporary directory (``local_dir``: resume reads MLflow, not this,
    and Ray's default ``~/ray_results`` would keep every search's state forever)."""
    if uri is None:
        return {"storage_path": local_dir}
    from airline_hpo.search.tune_storage import tune_filesystem

    bucket, _, prefix = uri[len("s3://") :].partition("/")
    endpoint = storage.s3_endpoint()
    kwargs: dict[str, Any] = {}
    if endpoint:
        scheme, _, host = endpoint.partition("://")
        kwargs = {"endpoint_override": host or scheme, "scheme": scheme if host else "https"}
    region = os.environ.get("AWS_REGION") or os.environ.get("AWS_DEFAULT_REGION")
    if region:
        kwargs["region"] = region
    path = "/".join(p for p in (bucket, prefix.strip("/"), parent_run_id) if p)
    # Without directory markers: Arrow's would need ListBucket on the whole bucket (see tune_storage).
    return {"storage_path": path, "storage_filesystem": tune_filesystem(**kwargs)}


@dataclass
class RaySearch:
    outcomes: list[TrialOutcome]
    stop_reason: str | None
    #: Driver-side seconds from each trial's start to its completion, by trial number (the benchmark's wall).
    trial_wall: dict[int, float]
    lost_runs: int


class FixedSearcher(Searcher):
    """Suggests the given configurations in order, numbered 1..n (the benchmark's same-configurations runs)."""

    def __init__(self, configs: Sequence[ForestParams]) -> None:
        super().__init__(metric="loss", mode="min")
        self.configs, self.next = list(configs), 0

    def suggest(self, trial_id: str) -> dict[str, Any] | str | None:
        if self.next >= len(self.configs):
            return Searcher.FINISHED
        self.next += 1
        return {**dataclasses.asdict(self.configs[self.next - 1]), NUMBER_KEY: self.next}

    def on_trial_complete(self, trial_id: str, result: dict | None = None, error: bool = False) -> None:
        pass


def _outcome_from(result: Any, number: int) -> TrialOutcome:
    params = ForestParams.from_mapping(result.config)
    metrics = result.metrics or {}
    if result.error is None and "loss" in metrics:
        return TrialOutcome(
            number,
            params,
            metrics["run_id"],
            ok=True,
            accuracy=metrics["val_accuracy"],
            roc_auc=metrics["val_roc_auc"],
            loss_value=metrics["loss"],
            fit_seconds=metrics["fit_seconds"],
            predict_seconds=metrics["predict_seconds"],
            wall_seconds=metrics["trial_seconds"],
        )
    message = str(result.error).strip().splitlines()[-1] if result.error is not None else "stopped"
    return TrialOutcome(number, params, "", ok=False, error=message[:4000])


def search(
    config: Any,
    engine_name_: str,
    split: splits.Split,
    experiment_id: str,
    parent_run_id: str,
    space: dict[str, Any],
    previous: Sequence[TrialOutcome],
    progress: Any,
    searcher: Any = None,
) -> RaySearch:
    """Run the remaining ``max_evals - len(previous)`` trials with Ray Tune; returns every trial's outcome,
    earlier ones first. Ray must be connected (:func:`connected`). ``searcher`` replaces TPE (the benchmark runs
    fixed configurations through the same machinery)."""
    from mlflow import MlflowClient
    from ray import tune

    remaining = config.max_evals - len(previous)
    if remaining <= 0:
        return RaySearch(list(previous), None, {}, 0)
    trials_only = dataclasses.replace(  # the test rows stay on the driver: no trial may see them
        split, x_test=split.x_test.iloc[:0], y_test=split.y_test[:0], test_index=split.test_index[:0]
    )
    payload = Payload(
        trials_only,
        engine_name_,
        config.seed,
        config.n_streams,
        experiment_id,
        parent_run_id,
        {k: os.environ[k] for k in TRACKING_ENV if os.environ.get(k)},
        config.objective,
        trial_threads(config.executor, config.cpus_per_trial),
        config.family,
    )
    from ray.tune.search import ConcurrencyLimiter

    searcher = ConcurrencyLimiter(
        searcher or _numbered_searcher(space, config, previous), max_concurrent=config.parallelism
    )
    budget = BudgetStopper(config.max_failed, config.early_stop, previous, progress)
    resources = {"cpu": trial_cpus(config.executor, config.cpus_per_trial), "gpu": gpus_per_trial(config)}
    budget.start_timeout = start_timeout(resources)
    trainable = tune.with_resources(tune.with_parameters(run_trial, payload=payload), resources)
    local_dir = tempfile.TemporaryDirectory(prefix="ray-tune-")
    tuner = tune.Tuner(
        trainable,
        tune_config=tune.TuneConfig(
            search_alg=searcher,
            num_samples=remaining,
            reuse_actors=True,
            time_budget_s=config.timeout_minutes * 60 if config.timeout_minutes > 0 else None,
        ),
        run_config=tune.RunConfig(
            name=f"search-{parent_run_id}",
            failure_config=tune.FailureConfig(max_failures=config.trial_retries),
            stop=budget,
            callbacks=[budget],
            verbose=0,
            **_storage(storage_uri(config.ray_storage, config.fpath), parent_run_id, local_dir.name),
        ),
    )
    outcomes = list(previous)
    with local_dir:  # the results are read before the local state goes
        with contextlib.redirect_stdout(sys.stderr):  # Tune prints a banner even when silent
            grid = tuner.fit()
        for result in grid:
            number = int((result.config or {}).get(NUMBER_KEY, 0))
            metrics = result.metrics or {}
            if result.error is None and "loss" not in metrics:
                continue  # never ran to the end: stopped by a budget (its run, if any, is marked KILLED below)
            outcomes.append(_outcome_from(result, number))
    outcomes.sort(key=lambda o: o.number)
    client = MlflowClient()
    stopped = shutdown.requested()
    lost = resume.kill_running(
        client,
        resume.nested_runs(client, experiment_id, parent_run_id),
        f"stopped by {stopped.name}: the running trial was cut short"
        if stopped
        else "lost: its Ray worker or node died, or a budget stopped it; the trial was retried or dropped",
    )
    if budget.starved and not stopped:
        raise TrainerError(
            f"{budget.starved}: a trial asks for {describe_request(resources)}, the Ray cluster offers "
            f"{describe(ray_resources())}",
            "lower cpus_per_trial/gpus_per_trial or add nodes to the cluster "
            f"({START_TIMEOUT_ENV} sets how long to wait for one, e.g. while an autoscaler adds a GPU node)",
            exit_code=EXIT_FAILED,
        )
    return RaySearch(outcomes, budget.reason, budget.trial_wall, lost)


#: Seconds a search on a Ray cluster (``RAY_ADDRESS``) waits for its first trial to start: an autoscaler may be
#: adding the node it needs. A local Ray cannot grow: it gives up at once when a trial cannot fit.
START_TIMEOUT_ENV = "AIRLINE_HPO_RAY_START_TIMEOUT"
DEFAULT_START_TIMEOUT = 900.0


def ray_resources() -> dict[str, float]:
    import ray

    return ray.cluster_resources()


def describe_request(resources: dict[str, float]) -> str:
    return f"CPU {resources['cpu']:g}, GPU {resources['gpu']:g}"


def start_timeout(resources: dict[str, float]) -> float:
    """How long to wait for the first trial to start (see :data:`START_TIMEOUT_ENV`): a setting no node can
    satisfy (``cpus_per_trial`` above every node's CPUs) would otherwise keep Tune's loop pending forever."""
    if not os.environ.get("RAY_ADDRESS", "").strip():
        offered = ray_resources()
        if resources["cpu"] > offered.get("CPU", 0) or resources["gpu"] > offered.get("GPU", 0):
            return 0.0
    raw = os.environ.get(START_TIMEOUT_ENV, "").strip()
    try:
        value = float(raw) if raw else DEFAULT_START_TIMEOUT
    except ValueError:
        raise TrainerError(f"{START_TIMEOUT_ENV}={raw!r} is not a number", "set it to seconds, e.g. 900") from None
    if not math.isfinite(value) or value <= 0:
        raise TrainerError(f"{START_TIMEOUT_ENV} must be a positive number of seconds (got {raw})", "e.g. 900")
    return value


# ---------------------------------------------------------------------------------------------------- the refit


def refit_on_cluster(
    config: Any, engine_name_: str, params: ForestParams, split: splits.Split, seed: int
) -> tuple[np.ndarray, Any, Any, float]:
    """:func:`airline_hpo.search.refit.refit_and_test` as a Ray task with a trial's resources (a cuML refit needs a
    GPU; the driver has none). Returns (feature importances, scikit-learn model, test score, refit seconds)."""
    import ray

    def refit(split_: splits.Split) -> tuple[np.ndarray, Any, Any, float]:
        engine = make_engine(engine_name_, trial_threads(config.executor, config.cpus_per_trial), params.family)
        model, sk_model, test, seconds = refit_and_test(engine, params, split_, seed)
        return np.asarray(engine.feature_importances(model)), sk_model, test, seconds

    task = ray.remote(
        num_cpus=trial_cpus(config.executor, config.cpus_per_trial), num_gpus=gpus_per_trial(config), max_retries=1
    )(refit)
    try:
        return ray.get(task.remote(split))
    except Exception as exc:
        raise TrainerError(
            f"the refit of the best configuration failed on the Ray cluster ({type(exc).__name__})",
            "read the Ray worker's log; the trials and their runs are kept",
            exit_code=EXIT_FAILED,
        ) from exc


def describe(cluster: dict[str, float]) -> str:
    return ", ".join(f"{k} {v:g}" for k, v in sorted(cluster.items()) if k in {"CPU", "GPU"}) or "no resources"


def warn(message: str) -> None:
    print(f"warning: {message}", file=sys.stderr, flush=True)
