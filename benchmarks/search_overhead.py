"""``make bench``: what a trial costs besides fitting, here and done the seed's way, measured in one run.

Both ways run the same forest configurations (drawn from the search space with a fixed seed) on the same file:

- this trainer: the file is read once; each trial is a nested run written with three tracking calls (create,
  one batch of params and metrics, terminate) and no artifact; the best model is logged once at the end.
- the seed's way: every trial re-reads and re-splits the parquet file, opens a nested run with the fluent API,
  logs params and metrics one call each, and logs a full model artifact.

Overhead share of a trial = (trial wall time - fit - predict) / trial wall time. The goal is under 5%.
"""

from __future__ import annotations

import statistics
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import mlflow
import numpy as np
from airline_hpo.data import loading as data_mod
from airline_hpo.data import prepare, splits
from airline_hpo.errors import OneLineParser, run_cli
from airline_hpo.model import registry
from airline_hpo.model.engines import ForestParams, SklearnEngine
from airline_hpo.search.driver import SearchConfig, search_space
from airline_hpo.search.trials import InProcessTrialRunner, TrialSpec
from hyperopt.pyll import stochastic

EXPERIMENT = "airline-hpo-benchmark"


@dataclass(frozen=True)
class Timing:
    wall: float
    fit: float
    predict: float

    @property
    def overhead_share(self) -> float:
        return max(0.0, self.wall - self.fit - self.predict) / self.wall


def configurations(count: int, trees_max: int, depth_max: int, seed: int) -> list[ForestParams]:
    """``count`` configurations sampled from the search's own space (what a random search would try)."""
    space = search_space(SearchConfig(fpath="-", trees_max=trees_max, depth_max=depth_max), "sklearn")
    rng = np.random.default_rng(seed)
    return [ForestParams.from_mapping(stochastic.sample(space, rng=rng)) for _ in range(count)]


def our_way(fpath: str, configs: list[ForestParams], seed: int) -> tuple[float, list[Timing], float]:
    """Returns (data load seconds, per-trial timings, seconds of the closing work: waiting for the last trial's
    tracking writes and logging the best model once)."""
    data_mod.clear_cache()
    started = time.perf_counter()
    split = splits.make_split(data_mod.load_dataset(fpath), seed=seed)
    load = time.perf_counter() - started
    engine = SklearnEngine()
    with mlflow.start_run(run_name="bench-this-trainer") as parent:
        runner = InProcessTrialRunner(engine, split, seed, parent.info.experiment_id, parent.info.run_id)
        outcomes = [runner.run(TrialSpec(i + 1, params)) for i, params in enumerate(configs)]
        started = time.perf_counter()
        runner.flush()
        flush = time.perf_counter() - started
        best = max(outcomes, key=lambda o: o.accuracy)
        started = time.perf_counter()
        registry.log_and_register(best.model, split.x_test.head(5), model_name="")
        log_once = time.perf_counter() - started
    return load, [Timing(o.wall_seconds, o.fit_seconds, o.predict_seconds) for o in outcomes], flush + log_once


def seed_way(fpath: str, configs: list[ForestParams], seed: int) -> list[Timing]:
    """The seed's trial body, faithfully wasteful (its loss sign bug aside): read, split, fit, log a model."""
    import mlflow.sklearn
    from sklearn.ensemble import RandomForestClassifier
    from sklearn.metrics import accuracy_score

    timings = []
    with mlflow.start_run(run_name="bench-seed-way"):
        for params in configs:
            started = time.perf_counter()
            split = splits.make_split(data_mod.read_dataset(fpath), seed=seed)  # re-read every trial
            with mlflow.start_run(nested=True):
                mlflow.log_param("n_estimators", params.n_estimators)
                mlflow.log_param("max_depth", params.max_depth)
                mlflow.log_param("max_features", params.max_features)
                t0 = time.perf_counter()
                model = RandomForestClassifier(**SklearnEngine.estimator_kwargs(params, seed)).fit(
                    split.x_train, split.y_train
                )
                t1 = time.perf_counter()
                predicted = model.predict(split.x_test)
                t2 = time.perf_counter()
                mlflow.log_metric("accuracy", accuracy_score(split.y_test, predicted))
                mlflow.sklearn.log_model(model, name="model", skops_trusted_types=registry.SKOPS_TRUSTED_TYPES)
            timings.append(Timing(time.perf_counter() - started, t1 - t0, t2 - t1))
    return timings


def _mean(values: Sequence[float]) -> float:
    return statistics.fmean(values)


def report(rows: int, load: float, ours: list[Timing], log_once: float, seeds: list[Timing]) -> str:
    ours_total = load + sum(t.wall for t in ours) + log_once
    seed_total = sum(t.wall for t in seeds)
    shares = [t.overhead_share for t in ours]
    lines = [
        f"benchmark: {len(ours)} trials, the same configurations both ways, {rows:,} flights, scikit-learn",
        "",
        f"{'':34}{'this trainer':>16}{'seed way':>16}",
        f"{'data load':34}{f'{load:.3f}s once':>16}{'every trial':>16}",
        f"{'fit per trial (mean)':34}{_mean([t.fit for t in ours]):>15.2f}s{_mean([t.fit for t in seeds]):>15.2f}s",
        f"{'predict per trial (mean)':34}{_mean([t.predict for t in ours]):>15.3f}s"
        f"{_mean([t.predict for t in seeds]):>15.3f}s",
        f"{'trial wall time (mean)':34}{_mean([t.wall for t in ours]):>15.2f}s{_mean([t.wall for t in seeds]):>15.2f}s",
        f"{'overhead share (mean)':34}{_mean(shares):>16.1%}{_mean([t.overhead_share for t in seeds]):>16.1%}",
        f"{'overhead share (worst trial)':34}{max(shares):>16.1%}{max(t.overhead_share for t in seeds):>16.1%}",
        f"{'model logging (+ last writes)':34}{f'{log_once:.2f}s once':>16}{'every trial':>16}",
        f"{'whole search':34}{ours_total:>15.1f}s{seed_total:>15.1f}s",
        "",
        f"seed way / this trainer: {seed_total / ours_total:.2f}x the time; "
        f"overhead goal < 5%: {'met' if _mean(shares) < 0.05 else 'NOT met'} ({_mean(shares):.1%})",
    ]
    return "\n".join(lines)


def _parser() -> OneLineParser:
    parser = OneLineParser(prog="bench", description=__doc__.splitlines()[0])
    parser.add_argument("--fpath", default="", help="prepared airline parquet (default: prepare one)")
    parser.add_argument("--rows", type=int, default=100_000, help="flights to prepare when no --fpath is given")
    parser.add_argument("--trials", type=int, default=6)
    parser.add_argument("--trees-max", type=int, default=50)
    parser.add_argument("--depth-max", type=int, default=12)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--use-env", action="store_true", help="use MLFLOW_TRACKING_URI as set, not the local stack")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    import os

    from airline_hpo.demo import REPO_ROOT, stack_up_and_env

    args = _parser().parse_args(argv)
    if not args.use_env:
        os.environ.update(stack_up_and_env())
    os.environ["MLFLOW_EXPERIMENT_NAME"] = EXPERIMENT
    registry.check_tracking_server()
    fpath = args.fpath
    if not fpath:
        fpath = str(REPO_ROOT / "data" / f"bench-{args.rows}.parquet")
        if not Path(fpath).exists():
            prepare.prepare(fpath, rows=args.rows, seed=args.seed)
    rows = data_mod.read_dataset(fpath).rows
    configs = configurations(args.trials, args.trees_max, args.depth_max, args.seed)
    print(f"running {args.trials} trials this trainer's way, then the seed's way, on {fpath} ...", flush=True)
    load, ours, log_once = our_way(fpath, configs, args.seed)
    seeds = seed_way(fpath, configs, args.seed)
    print()
    print(report(rows, load, ours, log_once, seeds))
    return 0


if __name__ == "__main__":
    sys.exit(run_cli(main))
