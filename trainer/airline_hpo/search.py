"""The hyperparameter search (entry point ``hyperopt``): hyperopt over random-forest settings, tracked in MLflow.

One parent run holds the search: its configuration, the best parameters and ``best_accuracy`` (with the
majority-class baseline beside it), a plot of the search and the best model's feature importances. Each trial is
a nested run with its parameters and ``accuracy``, ``roc_auc``, ``loss``, ``fit_seconds``, ``predict_seconds``.
The best model is logged once, registered under ``model_name``, and the alias ``champion`` moves to it.

Fixes of the seed (design notes §4): the loss is 1 - accuracy (the seed minimized accuracy), data is read once,
no model per trial, ``max_evals`` and ``seed`` are parameters, and failures exit non-zero.
"""

from __future__ import annotations

import contextlib
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from functools import partial
from typing import Any

import mlflow
import numpy as np
from hyperopt import STATUS_FAIL, STATUS_OK, Trials, fmin, hp, rand, tpe
from hyperopt.exceptions import AllTrialsFailed
from hyperopt.pyll import scope
from tqdm import tqdm

from airline_hpo import data as data_mod
from airline_hpo import plots, tracking
from airline_hpo.engines import ENGINE_CHOICES, Engine, ForestParams, make_engine
from airline_hpo.errors import EXIT_FAILED, NO_MODEL, OneLineParser, TrainerError, model_name, positive_int, run_cli
from airline_hpo.schema import FEATURES
from airline_hpo.trials import InProcessTrialRunner, TrialOutcome, TrialRunner, TrialSpec

ALGOS = ("tpe", "rand")


@dataclass(frozen=True)
class SearchConfig:
    """Everything that defines a search; the CLI options and MLproject parameters map one to one."""

    fpath: str
    max_evals: int = 20
    algo: str = "tpe"
    seed: int = 42
    test_size: float = 0.2
    engine: str = "auto"
    model_name: str = "airline-delay"
    max_rows: int = 0
    nonfinite: str = "fail"
    trees_max: int = 300
    depth_max: int = 20
    n_streams: int = 4
    alias: str = tracking.CHAMPION_ALIAS

    def validate(self) -> SearchConfig:
        positive_int("max_evals", self.max_evals)
        positive_int("trees_max", self.trees_max)
        positive_int("depth_max", self.depth_max)
        if self.algo not in ALGOS:
            raise TrainerError(f"unknown algo {self.algo!r}", f"use one of {', '.join(ALGOS)}")
        if self.engine not in ENGINE_CHOICES:
            raise TrainerError(f"unknown engine {self.engine!r}", f"use one of {', '.join(ENGINE_CHOICES)}")
        if not 0.0 < self.test_size < 1.0:
            raise TrainerError(f"test_size must be between 0 and 1 (got {self.test_size})", "pass e.g. 0.2")
        if self.max_rows < 0:
            raise TrainerError(f"max_rows must be 0 (all) or positive (got {self.max_rows})", "pass 0 or more")
        return self


@dataclass
class SearchResult:
    parent_run_id: str
    experiment_id: str
    outcomes: list[TrialOutcome]
    best: TrialOutcome
    baseline_accuracy: float
    registered: tracking.RegisteredModel | None
    trials: Trials = field(repr=False)

    @property
    def failed(self) -> list[TrialOutcome]:
        return [o for o in self.outcomes if not o.ok]


def _int_range(name: str, low: int, high: int, step: int = 1) -> Any:
    """An integer dimension; a fixed value when the bounds meet (hyperopt refuses low == high)."""
    return high if low >= high else scope.int(hp.quniform(name, low, high, step))


def search_space(config: SearchConfig, engine_name: str) -> dict[str, Any]:
    """max_depth and n_estimators as integers, max_features as a fraction; cuML also tunes its n_bins."""
    trees_low = min(10, config.trees_max)
    trees_step = 10 if config.trees_max - trees_low >= 20 else 1
    space: dict[str, Any] = {
        "n_estimators": _int_range("n_estimators", trees_low, config.trees_max, trees_step),
        "max_depth": _int_range("max_depth", min(3, config.depth_max), config.depth_max),
        "max_features": hp.uniform("max_features", 0.2, 1.0),
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


class _Objective:
    """hyperopt's objective: run one trial through the runner, return its loss (or a failed status)."""

    def __init__(self, runner: TrialRunner, n_streams: int, progress: tqdm) -> None:
        self.runner = runner
        self.n_streams = n_streams
        self.progress = progress
        self.outcomes: list[TrialOutcome] = []

    def __call__(self, sample: dict[str, Any]) -> dict[str, Any]:
        params = ForestParams.from_mapping({"n_streams": self.n_streams, **sample})
        outcome = self.runner.run(TrialSpec(len(self.outcomes) + 1, params))
        self.outcomes.append(outcome)
        self._report()
        if not outcome.ok:
            return {"status": STATUS_FAIL, "error": outcome.error, "trial": outcome.number}
        return {"status": STATUS_OK, "loss": outcome.loss, "accuracy": outcome.accuracy, "trial": outcome.number}

    def _report(self) -> None:
        accuracies = [o.accuracy for o in self.outcomes if o.ok]
        failed = sum(not o.ok for o in self.outcomes)
        best = f"{max(accuracies):.4f}" if accuracies else "-"
        self.progress.set_postfix_str(f"best accuracy {best}, failed {failed}", refresh=False)
        self.progress.update(1)


def best_outcome(outcomes: Sequence[TrialOutcome]) -> TrialOutcome | None:
    """The successful trial with the lowest loss (= highest accuracy); the earliest one on a tie."""
    ok = [o for o in outcomes if o.ok]
    return min(ok, key=lambda o: (o.loss, o.number)) if ok else None


def _best_model(best: TrialOutcome, engine: Engine, split: data_mod.Split, seed: int) -> Any:
    """The best trial's model: kept in memory by in-process runners, refitted (same seed) otherwise."""
    if best.model is not None:
        return best.model
    x, y = engine.to_device(split.x_train, split.y_train)
    return engine.fit(best.params, x, y, seed)


def _log_summary(result: SearchResult, config: SearchConfig, engine: Engine, search_seconds: float) -> None:
    best = result.best
    mlflow.log_params({f"best_{k}": v for k, v in engine.logged_params(best.params).items()})
    mlflow.log_metrics(
        {
            "best_accuracy": best.accuracy,
            "best_roc_auc": best.roc_auc,
            "best_loss": best.loss,
            "baseline_accuracy": result.baseline_accuracy,
            "trials_ok": len(result.outcomes) - len(result.failed),
            "trials_failed": len(result.failed),
            "search_seconds": search_seconds,
            "mean_trial_overhead_share": float(np.mean([o.overhead_share for o in result.outcomes if o.ok])),
        }
    )
    mlflow.set_tag("best_trial_run_id", best.run_id)
    figure = plots.search_plot([o.loss for o in result.outcomes], 1.0 - result.baseline_accuracy)
    mlflow.log_figure(figure, "plots/search.png")
    plots.close(figure)


def run_search(config: SearchConfig, engine: Engine | None = None, runner_factory=None) -> SearchResult:
    """Run the whole search in the active experiment; raises :class:`TrainerError` for bad input (before any
    run exists), when no trial succeeds, or when registration fails. ``runner_factory(engine, split, seed,
    experiment_id, parent_run_id)`` swaps the trial runner (tests, and Kubernetes Jobs later)."""
    config.validate()
    engine = engine or make_engine(config.engine)
    tracking.check_tracking_server()
    dataset = data_mod.load_dataset(
        config.fpath, config.max_rows, seed=config.seed, nonfinite=config.nonfinite, engine=engine.name
    )
    split = data_mod.split(dataset, config.test_size, config.seed)
    runner_factory = runner_factory or InProcessTrialRunner

    with mlflow.start_run(run_name=f"hyperopt-{config.algo}-{engine.name}") as parent:
        experiment_id, parent_id = parent.info.experiment_id, parent.info.run_id
        mlflow.set_tags({**engine.tags(), "search.algo": config.algo, "data.source": config.fpath})
        tracking.log_params_once({k: v for k, v in asdict(config).items() if k != "alias"})
        mlflow.log_metrics(
            {
                "data_rows": dataset.rows,
                "data_late_share": dataset.late_share,
                "data_load_seconds": dataset.load_seconds,
                "data_dropped_rows": dataset.dropped_rows,
            }
        )
        runner = runner_factory(engine, split, config.seed, experiment_id, parent_id)
        trials = Trials()
        started = time.perf_counter()
        with tqdm(total=config.max_evals, desc="trials", unit="trial", file=sys.stderr, dynamic_ncols=True) as bar:
            objective = _Objective(runner, config.n_streams, bar)
            # fmin's closing space_eval needs one success; when none succeeded we report it below, with the cause
            with contextlib.suppress(AllTrialsFailed):
                fmin(
                    objective,
                    search_space(config, engine.name),
                    algo=suggest_algorithm(config.algo, config.max_evals),
                    max_evals=config.max_evals,
                    trials=trials,
                    rstate=np.random.default_rng(config.seed),
                    show_progressbar=False,
                    return_argmin=False,
                )
            runner.flush()  # every trial's run is written before the parent summarises them
        search_seconds = time.perf_counter() - started
        best = best_outcome(objective.outcomes)
        if best is None:
            first_error = objective.outcomes[0].error if objective.outcomes else "no trial ran"
            raise TrainerError(
                f"no trial succeeded ({len(objective.outcomes)} failed; first error: {first_error})",
                "read the `error` tag of the failed trial runs in the MLflow UI, fix the cause, run again",
                exit_code=EXIT_FAILED,
            )
        result = SearchResult(parent_id, experiment_id, objective.outcomes, best, split.majority_baseline, None, trials)
        _log_summary(result, config, engine, search_seconds)
        model = _best_model(best, engine, split, config.seed)
        figure = plots.importance_plot(list(FEATURES), list(engine.feature_importances(model)))
        mlflow.log_figure(figure, "plots/feature_importances.png")
        plots.close(figure)
        sk_model = engine.to_sklearn(model)
        result.registered = tracking.log_and_register(sk_model, split.x_test.head(5), config.model_name, config.alias)
    return result


def _parser() -> OneLineParser:
    defaults = SearchConfig(fpath="")
    parser = OneLineParser(prog="hyperopt", description=__doc__.splitlines()[0])
    parser.add_argument("--fpath", required=True, help="airline parquet: local path or s3://bucket/key")
    parser.add_argument("--max-evals", type=int, default=defaults.max_evals, help="number of trials")
    parser.add_argument("--algo", default=defaults.algo, help=f"search algorithm: {', '.join(ALGOS)}")
    parser.add_argument("--seed", type=int, default=defaults.seed, help="seed of split, search and forests")
    parser.add_argument("--test-size", type=float, default=defaults.test_size, help="held-out share of rows")
    parser.add_argument("--engine", default=defaults.engine, help=f"{', '.join(ENGINE_CHOICES)}")
    parser.add_argument(
        "--model-name", type=model_name, default=defaults.model_name, help=f"registered model ({NO_MODEL} = none)"
    )
    parser.add_argument("--max-rows", type=int, default=defaults.max_rows, help="random N rows, seeded (0 = all)")
    parser.add_argument(
        "--nonfinite",
        default=defaults.nonfinite,
        choices=data_mod.NONFINITE_CHOICES,
        help="rows with NaN/inf features",
    )
    parser.add_argument("--trees-max", type=int, default=defaults.trees_max, help="upper bound of n_estimators")
    parser.add_argument("--depth-max", type=int, default=defaults.depth_max, help="upper bound of max_depth")
    parser.add_argument("--n-streams", type=int, default=defaults.n_streams, help="cuML CUDA streams")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    config = SearchConfig(**{k: v for k, v in vars(args).items()})
    result = run_search(config)
    best = result.best
    print(
        f"{len(result.outcomes)} trials ({len(result.failed)} failed); best accuracy {best.accuracy:.4f} "
        f"(majority baseline {result.baseline_accuracy:.4f}) with {asdict(best.params)}"
    )
    uri = mlflow.get_tracking_uri()
    where = (
        f": {uri}/#/experiments/{result.experiment_id}/runs/{result.parent_run_id}" if uri.startswith("http") else ""
    )
    print(f"parent run {result.parent_run_id} in experiment {result.experiment_id}{where}")
    if result.registered:
        reg = result.registered
        print(f"registered {reg.name} version {reg.version}; alias {reg.alias} -> {reg.model_uri}")
    return 0


if __name__ == "__main__":
    sys.exit(run_cli(main))
