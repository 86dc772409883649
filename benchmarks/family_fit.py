"""``make bench``: fit time per trial of each model family on the same rows, so a time budget can be planned.

Both families fit the same train part and are scored on the same validation part (the search's default
forward-in-time split), ``--trials`` configurations each, drawn from each family's default search space with one
seed (what a random search would try). Timed: the fit alone, as a trial's ``fit_seconds`` is; no tracking
server is needed. Threads: every core (``cpus_per_trial=auto`` in process), or ``--threads N``.
``--engine cuml`` times the GPU engine (cuML's forest, XGBoost with ``device=cuda``) where RAPIDS is installed.

Design notes §3c measured on the seed's real ``airline_small``: XGBoost (hist, defaults) fitted about 8x faster
than the tuned forest for a tie on AUC.
"""

from __future__ import annotations

import statistics
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from airline_hpo.data import loading as data_mod
from airline_hpo.data import prepare, splits
from airline_hpo.errors import OneLineParser, run_cli
from airline_hpo.model import objectives
from airline_hpo.model.engines import FAMILIES, ForestParams, make_engine
from airline_hpo.search.driver import SearchConfig, search_space
from hyperopt.pyll import stochastic


@dataclass(frozen=True)
class FamilyTiming:
    family: str
    fits: list[float]
    log_losses: list[float]
    roc_aucs: list[float]


def configurations(family: str, count: int, seed: int) -> list[ForestParams]:
    """``count`` configurations from ``family``'s default space (the search's own space builder)."""
    space = search_space(SearchConfig(fpath="-", family=family), "sklearn")
    rng = np.random.default_rng(seed)
    return [ForestParams.from_mapping(stochastic.sample(space, rng=rng)).validate() for _ in range(count)]


def time_family(
    family: str, split: splits.Split, count: int, seed: int, engine_name: str, threads: int | None
) -> FamilyTiming:
    engine = make_engine(engine_name, threads, family)
    x_train, y_train = engine.to_device(split.x_train, split.y_train)
    x_val, _ = engine.to_device(split.x_val)
    fits, losses, aucs = [], [], []
    for number, params in enumerate(configurations(family, count, seed), start=1):
        started = time.perf_counter()
        model = engine.fit(params, x_train, y_train, seed + number)
        fits.append(time.perf_counter() - started)
        probability = engine.predict_late_probability(model, x_val)
        losses.append(objectives.get("log_loss")(split.y_val, probability))
        aucs.append(objectives.get("roc_auc")(split.y_val, probability))
    return FamilyTiming(family, fits, losses, aucs)


def report(rows: int, train_rows: int, engine: str, threads: int | None, timings: Sequence[FamilyTiming]) -> str:
    cores = "all cores" if threads is None else f"{threads} thread(s)"
    lines = [
        f"benchmark: fit time per trial by model family, {rows:,} flights ({train_rows:,} train rows), "
        f"engine {engine}, {cores}, {len(timings[0].fits)} configurations each from the family's default space",
        "",
        f"{'family':16}{'fit mean':>10}{'median':>10}{'max':>10}{'trials/hour':>13}{'best val log_loss':>19}"
        f"{'best val AUC':>14}",
    ]
    for t in timings:
        mean = statistics.fmean(t.fits)
        lines.append(
            f"{t.family:16}{mean:>9.2f}s{statistics.median(t.fits):>9.2f}s{max(t.fits):>9.2f}s"
            f"{3600 / mean:>13,.0f}{min(t.log_losses):>19.4f}{max(t.roc_aucs):>14.4f}"
        )
    if len(timings) == 2:
        ratio = statistics.fmean(timings[0].fits) / statistics.fmean(timings[1].fits)
        lines += ["", f"{timings[0].family} / {timings[1].family} mean fit time: {ratio:.1f}x"]
    return "\n".join(lines)


def _parser() -> OneLineParser:
    parser = OneLineParser(prog="bench-families", description=__doc__.splitlines()[0])
    parser.add_argument("--fpath", default="", help="prepared airline parquet (default: prepare one)")
    parser.add_argument("--rows", type=int, default=100_000, help="flights to prepare when no --fpath is given")
    parser.add_argument("--trials", type=int, default=4, help="configurations per family")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--threads", type=int, default=0, help="threads per fit (0: every core)")
    parser.add_argument("--engine", default="sklearn", help="sklearn (CPU) or cuml (GPU: cuML forest, XGBoost cuda)")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    from airline_hpo.demo import REPO_ROOT

    args = _parser().parse_args(argv)
    fpath = args.fpath
    if not fpath:
        fpath = str(REPO_ROOT / "data" / f"bench-{args.rows}.parquet")
        if not Path(fpath).exists():
            prepare.prepare(fpath, rows=args.rows, seed=args.seed)
    dataset = data_mod.load_dataset(fpath)
    split = splits.make_split(dataset, "time", seed=args.seed)
    threads = args.threads or None
    print(f"fitting {args.trials} configurations per family on {fpath} ...", flush=True)
    timings = [time_family(f, split, args.trials, args.seed, args.engine, threads) for f in FAMILIES]
    print()
    print(report(dataset.rows, len(split.y_train), args.engine, threads, timings))
    return 0


if __name__ == "__main__":
    sys.exit(run_cli(main))
