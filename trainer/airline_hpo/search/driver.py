"""The hyperparameter search (entry point ``hyperopt``): hyperopt over random-forest settings, tracked in MLflow.

The rows are split once (:mod:`airline_hpo.data.splits`: by date by default) into train, validation and test.
What is searched comes from a search spec (:mod:`airline_hpo.search.spec`: the table, its target, the model
family's space, the objective); ``specs/airline.yaml`` is the default. Each trial is a nested run that fits on
train and logs ``val_accuracy``, ``val_roc_auc``, ``val_<objective>``, ``loss`` (the spec's objective on
validation, lower is better: what hyperopt minimizes; ``log_loss`` by default), ``fit_seconds``,
``predict_seconds``; no trial sees the test rows.
The best configuration is then refitted on train+validation and scored once on test: the parent run holds
``test_accuracy``, ``test_roc_auc`` and ``test_baseline_accuracy`` (always the commoner class, same rows) beside
the search's ``best_val_*``, plus a plot of the search and the model's feature importances. The model is logged
once and registered; :mod:`airline_hpo.model.promotion` decides whether it becomes ``champion`` or ``challenger``.

Budgets end the search early and cleanly (the best so far is still refitted and registered): ``max_failed``
failed trials, ``timeout_minutes`` (checked between trials), ``early_stop`` trials without a better validation
loss (hyperopt's ``no_progress_loss``). The reason is the parent's tag ``stop_reason``.

Fixes of the seed (design notes §4): the loss falls as the model gets better (the seed minimized accuracy),
data is read once, no model per trial, ``max_evals`` and ``seed`` are parameters, and failures exit non-zero.
"""

from __future__ import annotations

import contextlib
import json
import math
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field, replace
from functools import partial
from typing import Any

import mlflow
import numpy as np
from hyperopt import STATUS_FAIL, STATUS_OK, Trials, fmin, hp, rand, tpe
from hyperopt.early_stop import no_progress_loss
from hyperopt.exceptions import AllTrialsFailed
from hyperopt.pyll import scope
from tqdm import tqdm

from airline_hpo import ui_links
from airline_hpo.data import loading as data_mod
from airline_hpo.data import splits
from airline_hpo.errors import (
    AMOUNT,
    COUNT,
    EXIT_FAILED,
    NO_MODEL,
    PART,
    SEED,
    OneLineParser,
    TrainerError,
    check_finite,
    model_name,
    number,
    positive_int,
)
from airline_hpo.lifecycle import journal, outage, precheck, shutdown
from airline_hpo.model import dataset_input, diagnostics, objectives, plots, promotion, registry
from airline_hpo.model.engines import CRITERIA, ENGINE_CHOICES, Engine, ForestParams, SklearnEngine, make_engine
from airline_hpo.search import resume as resume_mod
from airline_hpo.search import spec as spec_mod
from airline_hpo.search.refit import question, refit_and_test, threshold_on_validation, to_pandas
from airline_hpo.search.trials import (
    AUTO_CPUS,
    InProcessTrialRunner,
    TrialOutcome,
    TrialRunner,
    TrialSpec,
    trial_seed,
    trial_threads,
)

ALGOS = ("tpe", "rand")
#: Option types beyond errors.py's shared ones (a week of search; the GPUs and CPUs a Ray node can offer).
MINUTES = number(float, 0, 7 * 24 * 60)
GPUS = number(float, 0, 64)
CPUS = number(float, 0, 1024, above=True)


def cpus_or_auto(text: str) -> float | str:
    """``--cpus-per-trial``: ``auto`` (see :func:`airline_hpo.search.trials.trial_cpus`) or a positive number."""
    return AUTO_CPUS if text.strip().lower() == AUTO_CPUS else CPUS(text)


#: the improvement's lower bound a new champion must clear: a finite number, not below 0.
MARGIN = number(float, 0.0)
#: a space bound where 0 means "the spec's".
BOUND = number(int, 0)
SHARE_OR_SPEC = number(float, 0.0, 1.0)
#: Fields of :class:`SearchConfig` that only the spec sets: logged from the spec (``objective``, ``space``).
SPEC_ONLY = (
    "objective", "trees_min", "depth_min", "leaf_min", "max_features_min", "max_features_max", "family", "space",
)  # fmt: skip
#: The search-parameter bounds that only a random forest has.
FOREST_ONLY_BOUNDS = {"leaf_max": 0, "max_samples_min": 0.0, "criteria": spec_mod.FROM_SPEC}
EXECUTORS = ("inprocess", "ray")


@dataclass(frozen=True)
class SearchConfig:
    """Everything that defines a search; the CLI options and MLproject parameters map one to one, except the
    fields below ``ray_storage``, which only a spec sets. ``spec`` (the sentinel ``FROM_SPEC``, or 0 for a
    bound) marks a value the search spec decides; :func:`with_spec` fills them in."""

    fpath: str = spec_mod.FROM_SPEC
    spec: str = spec_mod.DEFAULT_SPEC
    max_evals: int = 20
    algo: str = "tpe"
    seed: int = 42
    split: str = spec_mod.FROM_SPEC
    test_size: float = 0.2
    val_size: float = 0.2
    features: str = "pre_departure"
    engine: str = "auto"
    model_name: str = "airline-delay"
    promote: str = "if_better"
    promote_margin: float = promotion.DEFAULT_MARGIN
    max_rows: int = 0
    nonfinite: str = "fail"
    trees_max: int = 0
    depth_max: int = 0
    leaf_max: int = 0
    max_samples_min: float = 0.0
    criteria: str = spec_mod.FROM_SPEC
    n_streams: int = 4
    max_failed: int = 5
    timeout_minutes: float = 0.0
    early_stop: int = 0
    executor: str = "inprocess"
    parallelism: int = 1
    gpus_per_trial: float = 0.0
    #: ``auto``: every core in process, 1 per trial on Ray (:func:`airline_hpo.search.trials.trial_cpus`)
    cpus_per_trial: float | str = AUTO_CPUS
    trial_retries: int = 2
    resume_run_id: str = resume_mod.NO_RESUME
    ray_storage: str = "auto"
    # set from the spec only (not options): the objective and the rest of the space
    objective: str = objectives.DEFAULT
    trees_min: int = 0
    depth_min: int = 0
    leaf_min: int = 0
    max_features_min: float = 0.0
    max_features_max: float = 0.0
    #: The spec's ``model.family`` and, for ``xgboost``, its space as JSON (the forest's bounds are the fields above)
    family: str = "random_forest"
    space: str = ""

    @property
    def criteria_list(self) -> list[str]:
        """The criteria to try (the family's default ones while the spec has not been applied)."""
        if self.criteria == spec_mod.FROM_SPEC:
            return list(spec_mod.DEFAULT_SPACES["random_forest"]["criterion"])
        return [c.strip() for c in self.criteria.split(",") if c.strip()]

    def validate(self) -> SearchConfig:
        check_finite(asdict(self))  # a config built in code; the CLI's types refuse these at parse time
        positive_int("max_evals", self.max_evals)
        for name in ("trees_max", "depth_max", "leaf_max"):
            if getattr(self, name) != 0:  # 0: the spec's bound
                positive_int(name, getattr(self, name))
        if self.algo not in ALGOS:
            raise TrainerError(f"unknown algo {self.algo!r}", f"use one of {', '.join(ALGOS)}")
        if self.engine not in ENGINE_CHOICES:
            raise TrainerError(f"unknown engine {self.engine!r}", f"use one of {', '.join(ENGINE_CHOICES)}")
        if self.split not in (*splits.SPLITS, spec_mod.FROM_SPEC):
            raise TrainerError(f"unknown split {self.split!r}", f"use one of {', '.join(splits.SPLITS)}")
        if self.features not in splits.FEATURE_SETS:
            raise TrainerError(f"unknown features {self.features!r}", f"use one of {', '.join(splits.FEATURE_SETS)}")
        promotion.check_mode(self.promote)
        promotion.check_margin(self.promote_margin)
        objectives.get(self.objective)
        for name in ("test_size", "val_size"):
            if not 0.0 < getattr(self, name) < 1.0:
                raise TrainerError(f"{name} must be between 0 and 1 (got {getattr(self, name)})", "pass e.g. 0.2")
        if self.test_size + self.val_size >= 1.0:
            raise TrainerError("test_size + val_size must be below 1", "pass e.g. test_size=0.2 val_size=0.2")
        if self.max_rows < 0:
            raise TrainerError(f"max_rows must be 0 (all) or positive (got {self.max_rows})", "pass 0 or more")
        if self.max_samples_min and not 0.0 < self.max_samples_min <= 1.0:
            raise TrainerError(
                f"max_samples_min must be a fraction in (0, 1] (got {self.max_samples_min})", "pass e.g. 0.5"
            )
        criteria = self.criteria_list
        unknown = [c for c in criteria if c not in CRITERIA] or ([] if criteria else ["(none)"])
        if unknown:
            raise TrainerError(
                f"unknown criteria {', '.join(unknown)}", f"pass a comma-separated subset of {','.join(CRITERIA)}"
            )
        for name in ("max_failed", "timeout_minutes", "early_stop", "trial_retries", "gpus_per_trial"):
            if getattr(self, name) < 0:
                value = getattr(self, name)
                raise TrainerError(f"{name} must be 0 or positive (got {value})", f"pass {name}=0 or more")
        self._validate_executor()
        return self

    def _validate_executor(self) -> None:
        if self.executor not in EXECUTORS:
            raise TrainerError(f"unknown executor {self.executor!r}", f"use one of {', '.join(EXECUTORS)}")
        positive_int("parallelism", self.parallelism)
        if self.executor == "ray" and self.fpath != spec_mod.FROM_SPEC:
            from airline_hpo.search.ray_executor import storage_uri

            storage_uri(self.ray_storage, self.fpath)  # a bad value is a one-line error before any work
        if self.cpus_per_trial != AUTO_CPUS and not (
            isinstance(self.cpus_per_trial, (int, float)) and self.cpus_per_trial > 0
        ):
            raise TrainerError(f"cpus_per_trial must be positive (got {self.cpus_per_trial})", "pass e.g. 1")
        if self.executor == "inprocess" and self.parallelism > 1:
            raise TrainerError(
                f"parallelism={self.parallelism} needs executor=ray (in-process runs one trial at a time)",
                "pass executor=ray, or parallelism=1",
            )
        if self.gpus_per_trial > 1 and self.gpus_per_trial != int(self.gpus_per_trial):
            raise TrainerError(
                f"gpus_per_trial {self.gpus_per_trial} is neither a fraction of one GPU nor whole GPUs",
                "pass e.g. 0.5, 1 or 2",
            )


@dataclass
class SearchResult:
    parent_run_id: str
    experiment_id: str
    outcomes: list[TrialOutcome]
    best: TrialOutcome
    split: splits.Split = field(repr=False)
    stop_reason: str
    test: promotion.Score | None = None
    decision: promotion.Decision | None = None
    registered: registry.RegisteredModel | None = None
    trials: Trials = field(default_factory=Trials, repr=False)
    #: The spec's objective (what ``loss`` is)
    objective: str = objectives.DEFAULT

    @property
    def failed(self) -> list[TrialOutcome]:
        return [o for o in self.outcomes if not o.ok]


def _int_range(name: str, low: int, high: int, step: int = 1) -> Any:
    """An integer dimension; a fixed value when the bounds meet (hyperopt refuses low == high)."""
    return high if low >= high else scope.int(hp.quniform(name, low, high, step))


def with_spec(config: SearchConfig, spec: spec_mod.SearchSpec) -> SearchConfig:
    """The search to run: what the command line left to the spec (``FROM_SPEC``, 0) taken from the spec; what
    it set (``fpath``, ``split``, a bound such as ``trees_max``) overrides the spec. With ``model.family:
    xgboost`` ``trees_max`` and ``depth_max`` bound its trees and depth; the forest's other bounds are refused."""
    space = spec.space
    from_spec = spec_mod.FROM_SPEC
    common = {
        "fpath": spec.table.uri if config.fpath == from_spec else config.fpath,
        "split": spec.split if config.split == from_spec else config.split,
        "objective": spec.objective,
        "family": spec.family,
    }
    if spec.family == "xgboost":
        forest_only = [name for name, unset in FOREST_ONLY_BOUNDS.items() if getattr(config, name) != unset]
        if forest_only:
            raise TrainerError(
                f"{', '.join(forest_only)} bound(s) a random forest, and spec {spec.where} searches xgboost",
                "leave them out, or set the space in the spec's model.space",
            )
        bounded = {k: list(v) for k, v in space.items()}
        for option, name in (("trees_max", "n_estimators"), ("depth_max", "max_depth")):
            if getattr(config, option):
                bounded[name] = [min(bounded[name][0], getattr(config, option)), getattr(config, option)]
        return replace(config, **common, space=json.dumps(bounded, sort_keys=True))

    def high(value: float, name: str) -> Any:
        return value or space[name][1]

    criteria = config.criteria if config.criteria != from_spec else ",".join(space["criterion"])
    return replace(
        config,
        **common,
        trees_min=space["n_estimators"][0],
        trees_max=high(config.trees_max, "n_estimators"),
        depth_min=space["max_depth"][0],
        depth_max=high(config.depth_max, "max_depth"),
        leaf_min=space["min_samples_leaf"][0],
        leaf_max=high(config.leaf_max, "min_samples_leaf"),
        max_features_min=space["max_features"][0],
        max_features_max=space["max_features"][1],
        max_samples_min=config.max_samples_min or space["max_samples"][0],
        criteria=criteria,
    )


def xgboost_space(bounds: dict[str, list[Any]]) -> dict[str, Any]:
    """XGBoost's dimensions: integers for trees, depth and child weight, the learning rate on a log scale (0.02 and
    0.2 are as far apart as 0.2 and 2), fractions for row and column sampling; ``family`` a constant, so every
    executor's sample names the family it fits."""

    def share(name: str) -> Any:
        low, high = bounds[name]
        return hp.uniform(name, low, high) if low < high else high

    low, high = bounds["learning_rate"]
    trees_low, trees_high = bounds["n_estimators"]
    return {
        "family": "xgboost",
        "n_estimators": _int_range("n_estimators", trees_low, trees_high, _step(trees_low, trees_high)),
        "max_depth": _int_range("max_depth", *bounds["max_depth"]),
        "learning_rate": hp.loguniform("learning_rate", math.log(low), math.log(high)) if low < high else high,
        "subsample": share("subsample"),
        "colsample_bytree": share("colsample_bytree"),
        "min_child_weight": _int_range("min_child_weight", *bounds["min_child_weight"]),
    }


def _step(low: int, high: int) -> int:
    """Trees in tens when the range is wide and starts on a ten (no search needs 137 vs 138 trees)."""
    return 10 if high - low >= 20 and low % 10 == 0 else 1


def search_space(config: SearchConfig, engine_name: str) -> dict[str, Any]:
    """The family's space. A forest: integers for trees, depth and leaf size, fractions for features and
    bootstrap rows, a choice of split criterion (each bounded by the spec's ``model.space`` or a parameter of
    the search; a bound left at 0 is the family's default); cuML also tunes its n_bins. XGBoost:
    :func:`xgboost_space` over the spec's bounds (the family's default space without a spec)."""
    if config.family == "xgboost":
        return xgboost_space(json.loads(config.space) if config.space else spec_mod.DEFAULT_SPACES["xgboost"])
    default = spec_mod.DEFAULT_SPACES["random_forest"]
    trees_max = config.trees_max or default["n_estimators"][1]
    trees_low = min(config.trees_min or default["n_estimators"][0], trees_max)
    trees_step = _step(trees_low, trees_max)
    depth_max = config.depth_max or default["max_depth"][1]
    leaf_max = config.leaf_max or default["min_samples_leaf"][1]
    features_low = config.max_features_min or default["max_features"][0]
    features_high = config.max_features_max or default["max_features"][1]
    samples_min = config.max_samples_min or default["max_samples"][0]
    criteria = config.criteria_list
    space: dict[str, Any] = {
        "n_estimators": _int_range("n_estimators", trees_low, trees_max, trees_step),
        "max_depth": _int_range("max_depth", min(config.depth_min or default["max_depth"][0], depth_max), depth_max),
        "max_features": (
            hp.uniform("max_features", features_low, features_high) if features_low < features_high else features_high
        ),
        "min_samples_leaf": _int_range(
            "min_samples_leaf", min(config.leaf_min or default["min_samples_leaf"][0], leaf_max), leaf_max
        ),
        "max_samples": hp.uniform("max_samples", samples_min, 1.0) if samples_min < 1.0 else 1.0,
        "criterion": hp.choice("criterion", criteria) if len(criteria) > 1 else criteria[0],
    }
    if engine_name == "cuml":
        space["n_bins"] = _int_range("n_bins", 16, 256, 16)
    return space


def suggest_algorithm(algo: str, max_evals: int) -> Callable[..., Any]:
    """TPE explores randomly for ``n_startup_jobs`` trials (20 by default) before it models anything; with a
    small budget that would make every trial random, so startup is a quarter of the budget (3 to 20)."""
    if algo == "rand":
        return rand.suggest
    return partial(tpe.suggest, n_startup_jobs=min(20, max(3, max_evals // 4)))


class Budget:
    """hyperopt's ``early_stop_fn``: stop at ``max_failed`` failed trials, or (hyperopt's own
    ``no_progress_loss``) after ``early_stop`` trials without a lower loss; remembers why it stopped.
    ``no_progress_loss`` reads the last trial's loss, which a failed trial lacks: a failure counts as a trial
    without progress here."""

    def __init__(self, max_failed: int = 0, early_stop: int = 0) -> None:
        self.max_failed, self.early_stop = max_failed, early_stop
        self._no_progress = no_progress_loss(early_stop) if early_stop else None
        self._args: list[Any] = []
        self.reason: str | None = None

    def __call__(self, trials: Trials, *_args: Any) -> tuple[bool, list[Any]]:
        results = [t["result"] for t in trials.trials]
        failed = sum(r.get("status") == STATUS_FAIL for r in results)
        if self.max_failed and failed >= self.max_failed:
            self.reason = f"max_failed: {failed} trials failed (limit {self.max_failed})"
            return True, []
        if self._no_progress is None or not results:
            return False, []
        if results[-1].get("status") == STATUS_OK:
            stop, self._args = self._no_progress(trials, *self._args)
        elif self._args:  # a failure after some success: one more trial without progress
            self._args = [self._args[0], self._args[1] + 1]
            stop = self._args[1] >= self.early_stop
        else:
            stop = False
        if stop:
            self.reason = f"early_stop: no lower validation loss in {self.early_stop} trials"
        return stop, []


class _Objective:
    """hyperopt's objective: run one trial through the runner, return its loss (or a failed status)."""

    def __init__(
        self, runner: TrialRunner, n_streams: int, progress: tqdm, previous: Sequence[TrialOutcome] = ()
    ) -> None:
        self.runner = runner
        self.n_streams = n_streams
        self.progress = progress
        #: Trials of an interrupted search (resume) first; new trials are numbered after the highest one.
        self.outcomes: list[TrialOutcome] = list(previous)
        self._next_number = max((o.number for o in previous), default=0) + 1

    def __call__(self, sample: dict[str, Any]) -> dict[str, Any]:
        shutdown.check()  # after SIGTERM/SIGINT no new trial starts
        params = ForestParams.from_mapping({"n_streams": self.n_streams, **sample})
        outcome = self.runner.run(TrialSpec(self._next_number, params))
        self._next_number += 1
        self.outcomes.append(outcome)
        self._report()
        if not outcome.ok:
            return {"status": STATUS_FAIL, "error": outcome.error, "trial": outcome.number}
        return {"status": STATUS_OK, "loss": outcome.loss, "accuracy": outcome.accuracy, "trial": outcome.number}

    def _report(self) -> None:
        losses = [o.loss for o in self.outcomes if o.ok]
        failed = sum(not o.ok for o in self.outcomes)
        best = f"{min(losses):.4f}" if losses else "-"
        self.progress.set_postfix_str(f"best validation loss {best}, failed {failed}", refresh=False)
        self.progress.update(1)


def best_outcome(outcomes: Sequence[TrialOutcome]) -> TrialOutcome | None:
    """The successful trial with the lowest loss (the best objective); the earliest one on a tie."""
    ok = [o for o in outcomes if o.ok]
    return min(ok, key=lambda o: (o.loss, o.number)) if ok else None


def baseline_loss(objective: objectives.Objective, split: splits.Split) -> float:
    """The loss of a model that knows only the training part's share of positives (every row gets it)."""
    prior = np.full(len(split.y_val), float(np.mean(split.y_train)))
    return objective.loss(objective(split.y_val, prior))


def _log_summary(result: SearchResult, engine: Engine, search_seconds: float, objective: str) -> None:
    best = result.best
    goal = objectives.get(objective)
    mlflow.log_params({f"best_{k}": v for k, v in engine.logged_params(best.params).items()})
    mlflow.log_metrics(
        {
            "best_val_accuracy": best.accuracy,
            "best_val_roc_auc": best.roc_auc,
            "best_loss": best.loss,
            f"best_val_{objective}": goal.from_loss(best.loss),
            "val_baseline_loss": baseline_loss(goal, result.split),
            "val_baseline_accuracy": result.split.val_baseline_accuracy,
            "trials_ok": len(result.outcomes) - len(result.failed),
            "trials_failed": len(result.failed),
            "search_seconds": search_seconds,
            "mean_trial_overhead_share": float(np.mean([o.overhead_share for o in result.outcomes if o.ok])),
        }
    )
    mlflow.set_tag("best_trial_run_id", best.run_id)
    ylabel = f"loss = {'-' if goal.higher_is_better else ''}validation {objective} (lower is better)"
    figure = plots.search_plot([o.loss for o in result.outcomes], baseline_loss(goal, result.split), ylabel)
    mlflow.log_figure(figure, "plots/search.png")
    plots.close(figure)


def log_split(split: splits.Split) -> None:
    """Which columns and how many rows each part has (the test score means little without them)."""
    mlflow.log_metrics({k: float(v) for k, v in split.sizes().items()})
    mlflow.set_tags(
        {
            "split.kind": split.kind,
            "features.used": ",".join(split.features),
            "features.dropped_constant": ",".join(split.dropped_constant) or "-",
        }
    )
    if split.windows:
        parts = zip(("train", "validation", "test"), split.windows, strict=True)
        mlflow.set_tag("split.windows", ", ".join(f"{name} {window}" for name, window in parts))


def log_test(test: promotion.Score, split: splits.Split) -> None:
    """Every objective on the test rows (``test_log_loss``, ``test_roc_auc``, ``test_pr_auc``, ``test_accuracy``)
    and the majority baseline's accuracy on them."""
    mlflow.log_metrics({**test.metrics("test_"), "test_baseline_accuracy": split.test_baseline_accuracy})


def _stop_reason(reason: str | None, outcomes: list[TrialOutcome], config: SearchConfig) -> str:
    if reason:
        return reason
    if len(outcomes) >= config.max_evals:
        return f"max_evals: all {config.max_evals} trials ran"
    return f"timeout: {config.timeout_minutes:g} minutes passed after {len(outcomes)} trials"


def _search_in_process(
    config: SearchConfig, runner: TrialRunner, space: dict[str, Any], previous: list[TrialOutcome], bar: tqdm
) -> tuple[list[TrialOutcome], str | None, Trials]:
    """hyperopt's ``fmin`` in this process; ``previous`` (a resumed search's finished trials) are in its
    ``Trials`` as done, so they count towards ``max_evals`` and the budgets and steer TPE."""
    trials = resume_mod.hyperopt_trials(space, previous, config.criteria_list)
    budget = Budget(config.max_failed, config.early_stop)
    objective = _Objective(runner, config.n_streams, bar, previous)
    # fmin's closing space_eval needs one success; when none succeeded we report it below, with the cause
    with contextlib.suppress(AllTrialsFailed):
        fmin(
            objective,
            space,
            algo=suggest_algorithm(config.algo, config.max_evals),
            max_evals=config.max_evals,
            trials=trials,
            rstate=np.random.default_rng(resume_mod.search_seed(config.seed, len(previous))),
            show_progressbar=False,
            return_argmin=False,
            timeout=config.timeout_minutes * 60 if config.timeout_minutes > 0 else None,
            early_stop_fn=budget,
        )
    runner.flush()  # every trial's run is written before the parent summarises them
    return objective.outcomes, budget.reason, trials


def _start_parent(config: SearchConfig, engine: Engine, spec: spec_mod.SearchSpec) -> Any:
    """A new parent run, or (``resume_run_id``) the interrupted search's own, after checking it is the same
    search (the same parameters as asked, the same spec); refuses before any run is created or changed."""
    if not resume_mod.wants_resume(config.resume_run_id):
        return mlflow.start_run(run_name=f"{resume_mod.SEARCH_RUN_PREFIX}{config.algo}-{engine.name}")
    from mlflow.tracking.fluent import _get_experiment_id

    run = resume_mod.parent_run(mlflow.MlflowClient(), config.resume_run_id, _get_experiment_id())
    resume_mod.check_same_search(run, {**asdict(config), "engine": config.engine})
    logged = run.data.tags.get("spec.sha256")
    if logged is not None and logged != spec.sha256:
        raise TrainerError(
            f"run {run.info.run_id} searched another spec (sha256 {logged[:12]}, this one {spec.sha256[:12]})",
            "resume with the spec that search used (its artifact spec/search.yaml), or start a new search",
        )
    # Trials that finished while the server was down come back first, so resume sees them as finished.
    journal.replay(run.info.run_id, mark_stale=False)
    return mlflow.start_run(run_id=run.info.run_id)


def run_search(config: SearchConfig, engine: Engine | None = None, runner_factory=None) -> SearchResult:
    """Run the whole search in the active experiment; raises :class:`TrainerError` for bad input (before any
    run exists), when no trial succeeds, or when registration fails. ``runner_factory(engine, split, seed,
    experiment_id, parent_run_id)`` swaps the trial runner (tests, and Kubernetes Jobs later)."""
    asked = config.validate()
    spec, spec_text = spec_mod.load(config.spec)
    config = with_spec(config, spec).validate()
    on_ray = config.executor == "ray"
    if on_ray:
        from airline_hpo.search import ray_executor
    threads = trial_threads(config.executor, config.cpus_per_trial)
    engine = engine or (
        ray_executor.driver_engine(config) if on_ray else make_engine(config.engine, threads, config.family)
    )
    precheck.run(config.model_name)  # name, tracking URI, server, database, artifact store: before any run
    dataset = data_mod.load_dataset(  # with Ray the driver keeps host rows; GPU workers copy them to the device
        config.fpath,
        config.max_rows,
        seed=config.seed,
        nonfinite=config.nonfinite,
        engine="sklearn" if on_ray else engine.name,
        table=replace(spec.table, uri=config.fpath),
    )
    split = splits.make_split(
        dataset, config.split, config.test_size, config.val_size, config.seed, config.features, spec.gap
    )
    runner_factory = runner_factory or partial(InProcessTrialRunner, keep_best_model=False, objective=config.objective)
    space = search_space(config, engine.name)

    with contextlib.ExitStack() as stack:
        parent = stack.enter_context(_start_parent(asked, engine, spec))
        stack.enter_context(shutdown.guard(config.max_evals))  # before Ray: a signal while it starts is a stop
        cluster = stack.enter_context(ray_executor.connected()) if on_ray else None
        experiment_id, parent_id = parent.info.experiment_id, parent.info.run_id
        registry.mark_training_experiment(experiment_id)
        mlflow.set_tags({**engine.tags(), "search.algo": config.algo, "data.source": config.fpath})
        mlflow.set_tags({"executor": config.executor, "executor.parallelism": str(config.parallelism)})
        if cluster is not None:
            mlflow.set_tag("ray.cluster", ray_executor.describe(cluster))
        registry.log_params_once({k: v for k, v in asdict(asked).items() if k not in SPEC_ONLY})
        registry.log_params_once(
            {"objective": config.objective, "space": json.dumps(spec.space), "family": config.family}
        )
        mlflow.log_text(spec_text, "spec/search.yaml")
        mlflow.set_tags({"spec.sha256": spec.sha256, "spec.source": config.spec, "data.target": dataset.target})
        mlflow.log_metrics(
            {
                "data_rows": dataset.rows,
                "data_late_share": dataset.late_share,
                "data_load_seconds": dataset.load_seconds,
                "data_dropped_rows": dataset.dropped_rows,
            }
        )
        log_split(split)
        dataset_input.log_dataset(dataset, config.fpath)
        previous: list[TrialOutcome] = []
        if resume_mod.wants_resume(config.resume_run_id):
            previous, killed = resume_mod.finished_trials(mlflow.MlflowClient(), experiment_id, parent_id)
            mlflow.set_tag("resumed", f"{len(previous)} finished trials kept, {killed} interrupted marked KILLED")
        trials = Trials()
        started = time.perf_counter()
        with tqdm(
            total=config.max_evals, initial=min(len(previous), config.max_evals), desc="trials", unit="trial",
            file=sys.stderr, dynamic_ncols=True,
        ) as bar:  # fmt: skip
            if on_ray:
                ray_search = ray_executor.search(
                    config, engine.name, split, experiment_id, parent_id, space, previous, bar
                )
                outcomes, reason = ray_search.outcomes, ray_search.stop_reason
                shutdown.STATE.trials_done = len(outcomes)
                shutdown.check()  # Tune stopped on SIGTERM/SIGINT: the parent ends KILLED, as in-process
            else:
                runner = runner_factory(engine, split, config.seed, experiment_id, parent_id)
                outcomes, reason, trials = _search_in_process(config, runner, space, previous, bar)
        search_seconds = time.perf_counter() - started
        stop_reason = _stop_reason(reason, outcomes, config)
        mlflow.set_tag("stop_reason", stop_reason)
        best = best_outcome(outcomes)
        if best is None:
            first_error = outcomes[0].error if outcomes else "no trial ran"
            raise TrainerError(
                f"no trial succeeded ({len(outcomes)} failed; first error: {first_error})",
                "read the `error` tag of the failed trial runs in the MLflow UI, fix the cause, run again",
                exit_code=EXIT_FAILED,
            )
        result = SearchResult(
            parent_id, experiment_id, outcomes, best, split, stop_reason, trials=trials, objective=config.objective
        )
        _log_summary(result, engine, search_seconds, config.objective)
        refit_seed = trial_seed(config.seed, best.number)  # the best trial's own seed
        if on_ray and engine.name == "cuml":  # the driver has no GPU: the refit runs where the trials did
            importances, sk_model, result.test, refit_seconds = ray_executor.refit_on_cluster(
                config, engine.name, best.params, split, refit_seed
            )
        else:
            model, sk_model, result.test, refit_seconds = refit_and_test(engine, best.params, split, refit_seed)
            importances = engine.feature_importances(model)
        log_test(result.test, split)
        mlflow.log_metric("refit_seconds", refit_seconds)
        # the driver of a cuML search on Ray has no GPU: the fit on train for validation runs on its CPUs
        local = SklearnEngine() if on_ray and engine.name == "cuml" else engine
        threshold, on_train = threshold_on_validation(local, best.params, split, config.seed, spec.threshold, sk_model)
        test_probability = sk_model.predict_proba(to_pandas(split.x_test).astype(np.float32))[:, 1]
        diagnostics.log_test_plots(split.y_test, test_probability, threshold)
        diagnostics.log_permutation_importance(
            on_train, to_pandas(split.x_val), split.y_val, config.objective, config.seed, list(split.features)
        )
        figure = plots.importance_plot(list(split.features), list(importances))
        mlflow.log_figure(figure, "plots/feature_importances.png")
        plots.close(figure)
        result.decision, result.registered = promotion.register_and_promote(
            config.promote,
            config.model_name,
            sk_model,
            to_pandas(split.x_test),
            to_pandas(dataset.raw_features).iloc[split.test_index],
            split.y_test,
            question(dataset, split, config.seed, config.test_size, config.val_size),
            config.objective,
            config.promote_margin,
            dataset.encoding,
            threshold,
        )
    return result


def _parser() -> OneLineParser:
    d = SearchConfig()
    parser = OneLineParser(prog="hyperopt", description=__doc__.splitlines()[0])
    add = parser.add_argument
    add("--spec", default=d.spec, help="search spec: a YAML file in the project or s3:// URI")
    add("--fpath", default=d.fpath, help="the table (local path or s3://bucket/key) instead of the spec's data.uri")
    add("--max-evals", type=COUNT, default=d.max_evals, help="number of trials")
    add("--algo", default=d.algo, help=f"search algorithm: {', '.join(ALGOS)}")
    add("--seed", type=SEED, default=d.seed, help="seed of split, search and forests")
    add("--split", default=d.split, help=f"{', '.join(splits.SPLITS)} instead of the spec's split")
    add("--test-size", type=PART, default=d.test_size, help="share of rows in the test part (no trial sees it)")
    add("--val-size", type=PART, default=d.val_size, help="share of rows in the validation part")
    add("--features", default=d.features, help=f"{', '.join(splits.FEATURE_SETS)}")
    add("--engine", default=d.engine, help=f"{', '.join(ENGINE_CHOICES)}")
    add("--model-name", type=model_name, default=d.model_name, help=f"registered model ({NO_MODEL} = none)")
    add("--promote", default=d.promote, help=f"{', '.join(promotion.PROMOTE_CHOICES)}")
    add("--promote-margin", type=MARGIN, default=d.promote_margin, help="improvement's lower bound to clear")
    add("--max-rows", type=AMOUNT, default=d.max_rows, help="random N rows, seeded (0 = all)")
    add("--nonfinite", default=d.nonfinite, choices=data_mod.NONFINITE_CHOICES, help="rows with NaN/inf features")
    add("--trees-max", type=BOUND, default=d.trees_max, help="upper bound of n_estimators (0: the spec's)")
    add("--depth-max", type=BOUND, default=d.depth_max, help="upper bound of max_depth (0: the spec's)")
    add("--leaf-max", type=BOUND, default=d.leaf_max, help="upper bound of min_samples_leaf (0: the spec's)")
    add(
        "--max-samples-min",
        type=SHARE_OR_SPEC,
        default=d.max_samples_min,
        help="lower bound of max_samples (0: spec's)",
    )
    add("--criteria", default=d.criteria, help=f"split criteria, comma-separated: {','.join(CRITERIA)} (or spec)")
    add("--n-streams", type=COUNT, default=d.n_streams, help="cuML CUDA streams")
    add("--max-failed", type=AMOUNT, default=d.max_failed, help="stop after N failed trials (0 = no limit)")
    add("--timeout-minutes", type=MINUTES, default=d.timeout_minutes, help="stop starting trials after M min (0: none)")
    add("--early-stop", type=AMOUNT, default=d.early_stop, help="stop after N trials without improvement (0 = off)")
    add("--executor", default=d.executor, help=f"where trials run: {', '.join(EXECUTORS)} (Ray Tune)")
    add("--parallelism", type=COUNT, default=d.parallelism, help="trials in flight (executor=ray)")
    add("--gpus-per-trial", type=GPUS, default=d.gpus_per_trial, help="GPUs a Ray trial reserves (0.5 shares one)")
    add("--cpus-per-trial", type=cpus_or_auto, default=d.cpus_per_trial, help="CPUs (threads) per trial, or auto")
    add("--trial-retries", type=AMOUNT, default=d.trial_retries, help="Ray retries of a failed or lost trial")
    add("--resume-run-id", default=d.resume_run_id, help="parent run of an interrupted search to continue (none)")
    add("--ray-storage", default=d.ray_storage, help="Tune's state: s3://bucket/prefix, auto, none")
    add("--tracking-timeout", type=outage.BUDGET_TYPE, default=None, help="seconds of tracking outage to ride out (90)")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    outage.apply(outage.budget_seconds(vars(args).pop("tracking_timeout")))
    config = SearchConfig(**vars(args))
    result = run_search(config)
    best, split, test = result.best, result.split, result.test
    print(
        f"{len(result.outcomes)} trials ({len(result.failed)} failed), stopped by {result.stop_reason}; "
        f"best validation {result.objective} {objectives.get(result.objective).from_loss(best.loss):.4f}, "
        f"accuracy {best.accuracy:.4f} (majority baseline {split.val_baseline_accuracy:.4f}) "
        f"with {asdict(best.params)}"
    )
    print(
        f"test ({split.kind} split, {len(split.y_test):,} rows no trial saw), refitted on train+validation: "
        f"{result.objective} {test.value(result.objective):.4f}, accuracy {test.accuracy:.4f}, "
        f"ROC AUC {test.roc_auc:.4f} (majority baseline {split.test_baseline_accuracy:.4f})"
    )
    print(promotion.summary_line(result.decision, result.registered))
    uri = mlflow.get_tracking_uri()
    where = f": {ui_links.run_url(uri, result.experiment_id, result.parent_run_id)}" if uri.startswith("http") else ""
    print(f"parent run {result.parent_run_id} in experiment {result.experiment_id}{where}")
    return 0
