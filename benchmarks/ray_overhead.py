"""``make bench``: what a trial costs under ``executor=ray`` at parallelism 1 and 2, beside in-process, one run.

The same forest configurations (drawn with a seed from the search space, as in :mod:`benchmarks.search_overhead`) run
three ways against one tracking server: in this process (``InProcessTrialRunner``), then through Ray Tune with
one trial in flight, then two (the same trainable, object-store data and nested runs as a search; a fixed
searcher instead of TPE so that the configurations are the same). Ray is started once, before the timed runs.

Per-trial overhead = trial wall time - fit - predict. In-process the wall is the runner's; under Ray it is the
driver's, from Tune handing the trial to a ready worker (a reused one, or a new one once started) to Tune seeing
it complete (fetching the data from the object store, the nested run's tracking writes, the report). Whole search
= from the call to the last trial done (plus the last tracking writes in-process); "slot time not fitting, per
trial" spreads everything else over the trials: worker start-up, Tune's set-up, idle slots.

Ray 2.60 listens on every interface (design notes §3b). Run as root with ``unshare`` available (CI, this
machine), the measurement re-runs itself inside a network namespace that holds only loopback, with a local stack
of its own there; elsewhere it runs in place on a local Ray, as ``executor=ray`` without ``RAY_ADDRESS`` would.
"""

from __future__ import annotations

import os
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import mlflow
from airline_hpo.data import loading as data_mod
from airline_hpo.data import prepare, splits
from airline_hpo.errors import OneLineParser, run_cli
from airline_hpo.model import registry
from airline_hpo.model.engines import ForestParams, SklearnEngine
from airline_hpo.search.driver import SearchConfig
from airline_hpo.search.trials import InProcessTrialRunner, TrialSpec

from benchmarks.search_overhead import configurations

EXPERIMENT = "airline-hpo-benchmark-ray"

#: The goal of issue 11: median Ray overhead per trial once the cluster is up.
GOAL_SECONDS = 0.5


@dataclass(frozen=True)
class Run:
    label: str
    walls: list[float]
    fits: list[float]
    predicts: list[float]
    whole: float
    parallelism: int = 1

    @property
    def slot_overhead(self) -> float:
        """Per trial, the time its slot was not fitting or predicting over the whole search, worker start-up,
        Tune's set-up and idle slots included: (whole x parallelism - sum of fit and predict) / trials."""
        busy = sum(self.fits) + sum(self.predicts)
        return max(0.0, self.whole * self.parallelism - busy) / len(self.fits)

    @property
    def overheads(self) -> list[float]:
        return [max(0.0, w - f - p) for w, f, p in zip(self.walls, self.fits, self.predicts, strict=True)]


def in_process(split: splits.Split, configs: list[ForestParams], seed: int) -> Run:
    with mlflow.start_run(run_name="bench-inprocess") as parent:
        runner = InProcessTrialRunner(
            SklearnEngine(), split, seed, parent.info.experiment_id, parent.info.run_id, keep_best_model=False
        )
        started = time.perf_counter()
        outcomes = [runner.run(TrialSpec(i + 1, params)) for i, params in enumerate(configs)]
        runner.flush()
        whole = time.perf_counter() - started
    return Run(
        "in-process",
        [o.wall_seconds for o in outcomes],
        [o.fit_seconds for o in outcomes],
        [o.predict_seconds for o in outcomes],
        whole,
    )


def on_ray(split: splits.Split, configs: list[ForestParams], seed: int, parallelism: int, fpath: str) -> Run:
    from airline_hpo.search import ray_executor

    config = SearchConfig(
        fpath=fpath, max_evals=len(configs), seed=seed, engine="sklearn", executor="ray",
        parallelism=parallelism, max_failed=0, ray_storage="none",
    )  # fmt: skip
    with mlflow.start_run(run_name=f"bench-ray-p{parallelism}") as parent:
        started = time.perf_counter()
        result = ray_executor.search(
            config, "sklearn", split, parent.info.experiment_id, parent.info.run_id, {}, [], None,
            searcher=ray_executor.FixedSearcher(configs),
        )  # fmt: skip
        whole = time.perf_counter() - started
    ok = [o for o in result.outcomes if o.ok]
    if len(ok) != len(configs):
        errors = {o.error for o in result.outcomes if not o.ok}
        raise RuntimeError(f"{len(configs) - len(ok)} Ray trials failed: {errors}")
    return Run(
        f"ray p={parallelism}",
        [result.trial_wall[o.number] for o in ok],
        [o.fit_seconds for o in ok],
        [o.predict_seconds for o in ok],
        whole,
        parallelism,
    )


def report(rows: int, trials: int, ray_start: float, runs: Sequence[Run]) -> str:
    def row(name: str, values: list[str]) -> str:
        return f"{name:34}" + "".join(f"{v:>14}" for v in values)

    lines = [
        f"ray executor: {trials} trials, the same configurations each way, {rows:,} flights, scikit-learn, "
        f"{os.cpu_count()} CPUs",
        "",
        row("", [r.label for r in runs]),
        row("fit per trial (mean)", [f"{statistics.fmean(r.fits):.2f}s" for r in runs]),
        row("trial wall time (median)", [f"{statistics.median(r.walls):.2f}s" for r in runs]),
        row("overhead per trial (median)", [f"{statistics.median(r.overheads):.3f}s" for r in runs]),
        row("overhead per trial (worst)", [f"{max(r.overheads):.3f}s" for r in runs]),
        row("whole search", [f"{r.whole:.1f}s" for r in runs]),
        row("slot time not fitting, per trial", [f"{r.slot_overhead:.2f}s" for r in runs]),
        "",
        f"Ray start (once, before the timed runs): {ray_start:.1f}s",
    ]
    ray_runs = [r for r in runs if r.label.startswith("ray")]
    medians = ", ".join(f"{r.label} {statistics.median(r.overheads):.3f}s" for r in ray_runs)
    met = all(statistics.median(r.overheads) <= GOAL_SECONDS for r in ray_runs)
    lines.append(f"median Ray overhead per trial <= {GOAL_SECONDS}s: {'met' if met else 'NOT met'} ({medians})")
    return "\n".join(lines)


def measure(fpath: str, trials: int, trees_max: int, depth_max: int, seed: int) -> str:
    from airline_hpo.search import ray_executor

    os.environ["MLFLOW_EXPERIMENT_NAME"] = EXPERIMENT
    registry.check_tracking_server()
    data_mod.clear_cache()
    dataset = data_mod.load_dataset(fpath)
    split = splits.make_split(dataset, seed=seed)
    configs = configurations(trials, trees_max, depth_max, seed)
    runs = [in_process(split, configs, seed)]
    started = time.perf_counter()
    with ray_executor.connected(cpus=os.cpu_count()):
        ray_start = time.perf_counter() - started
        for parallelism in (1, 2):
            runs.append(on_ray(split, configs, seed, parallelism, fpath))
    return report(dataset.rows, trials, ray_start, runs)


def _private_netns() -> bool:
    return [name for _, name in socket.if_nameindex()] == ["lo"]


def _can_isolate() -> bool:
    return os.geteuid() == 0 and shutil.which("unshare") is not None and shutil.which("ip") is not None


def _in_own_stack(args: Sequence[str]) -> int:
    """Inside the namespace: a local stack of our own (temporary directory, free ports), then the measurement."""
    from local_stack import LocalStack, StackSettings
    from local_stack.processes import free_ports

    with tempfile.TemporaryDirectory(prefix="bench-ray-") as tmp:
        postgres_port, s3_port, mlflow_port = free_ports(3)
        stack = LocalStack(
            StackSettings(state_dir=Path(tmp), postgres_port=postgres_port, s3_port=s3_port, mlflow_port=mlflow_port)
        )
        try:
            stack.up(log=lambda _msg: None)
            os.environ.update(stack.client_env())
            print(measure(*args))
        finally:
            stack.down(wipe=True)
    return 0


def _parser() -> OneLineParser:
    parser = OneLineParser(prog="bench-ray", description=__doc__.splitlines()[0])
    parser.add_argument("--fpath", default="", help="prepared airline parquet (default: prepare one)")
    parser.add_argument("--rows", type=int, default=100_000, help="flights to prepare when no --fpath is given")
    parser.add_argument("--trials", type=int, default=6)
    parser.add_argument("--trees-max", type=int, default=50)
    parser.add_argument("--depth-max", type=int, default=12)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--here", action="store_true", help="run in place (no network namespace)")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    from airline_hpo.demo import REPO_ROOT

    args = _parser().parse_args(argv)
    fpath = args.fpath or str(REPO_ROOT / "data" / f"bench-{args.rows}.parquet")
    if not Path(fpath).exists():
        prepare.prepare(fpath, rows=args.rows, seed=args.seed)
    measure_args = (fpath, args.trials, args.trees_max, args.depth_max, args.seed)
    if _private_netns():
        return _in_own_stack(measure_args)
    if not args.here and _can_isolate():
        print(f"running {args.trials} trials in-process, then on Ray at parallelism 1 and 2, inside a network "
              "namespace with a local stack of its own ...", flush=True)  # fmt: skip
        argv_inner = [sys.executable, "-m", "benchmarks.ray_overhead", "--fpath", fpath, "--trials",
                      str(args.trials), "--trees-max", str(args.trees_max), "--depth-max", str(args.depth_max),
                      "--seed", str(args.seed)]  # fmt: skip
        inner = " ".join(argv_inner)
        env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(REPO_ROOT / "trainer"), str(REPO_ROOT)])}
        return subprocess.run(
            ["unshare", "--net", "sh", "-c", f"ip link set lo up && exec {inner}"], cwd=REPO_ROOT, env=env, check=False
        ).returncode
    from airline_hpo.demo import stack_up_and_env

    os.environ.update(stack_up_and_env())
    print(measure(*measure_args))
    return 0


if __name__ == "__main__":
    sys.exit(run_cli(main))
