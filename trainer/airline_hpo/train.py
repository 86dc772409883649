"""One configuration, one run (entry point ``train``): the same engine, data checks and logging as a search
trial, for reproducing or promoting a configuration found by the search."""

from __future__ import annotations

import sys
import time
from collections.abc import Sequence

import mlflow
import numpy as np
from sklearn.metrics import accuracy_score, roc_auc_score

from airline_hpo import data as data_mod
from airline_hpo import tracking
from airline_hpo.engines import ENGINE_CHOICES, ForestParams, make_engine
from airline_hpo.errors import NO_MODEL, OneLineParser, TrainerError, model_name, run_cli


def _parser() -> OneLineParser:
    defaults = ForestParams()
    parser = OneLineParser(prog="train", description=__doc__.splitlines()[0])
    parser.add_argument("--fpath", required=True, help="airline parquet: local path or s3://bucket/key")
    parser.add_argument("--n-estimators", type=int, default=defaults.n_estimators)
    parser.add_argument("--max-depth", type=int, default=defaults.max_depth)
    parser.add_argument("--max-features", type=float, default=defaults.max_features)
    parser.add_argument("--n-bins", type=int, default=defaults.n_bins, help="cuML only")
    parser.add_argument("--n-streams", type=int, default=defaults.n_streams, help="cuML only")
    parser.add_argument("--engine", default="auto", help=", ".join(ENGINE_CHOICES))
    parser.add_argument("--seed", type=int, default=42)
    parser.add_argument("--test-size", type=float, default=0.2)
    parser.add_argument("--max-rows", type=int, default=0, help="random N rows, seeded (0 = all)")
    parser.add_argument(
        "--nonfinite",
        default="fail",
        choices=data_mod.NONFINITE_CHOICES,
        help="rows with NaN/inf features",
    )
    parser.add_argument("--model-name", type=model_name, default="", help=f"register as ({NO_MODEL} = do not)")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    params = ForestParams(args.n_estimators, args.max_depth, args.max_features, args.n_bins, args.n_streams)
    params.validate()
    if args.max_rows < 0:
        raise TrainerError(f"max_rows must be 0 (all) or positive (got {args.max_rows})", "pass 0 or more")
    engine = make_engine(args.engine)
    tracking.check_tracking_server()
    dataset = data_mod.load_dataset(
        args.fpath, args.max_rows, seed=args.seed, nonfinite=args.nonfinite, engine=engine.name
    )
    split = data_mod.split(dataset, args.test_size, args.seed)
    with mlflow.start_run(run_name=f"train-{engine.name}") as run:
        mlflow.set_tags({**engine.tags(), "data.source": args.fpath})
        tracking.log_params_once({**engine.logged_params(params), "seed": args.seed, "test_size": args.test_size})
        x_train, y_train = engine.to_device(split.x_train, split.y_train)
        x_test, _ = engine.to_device(split.x_test)
        t0 = time.perf_counter()
        model = engine.fit(params, x_train, y_train, args.seed)
        t1 = time.perf_counter()
        late_probability = engine.predict_late_probability(model, x_test)
        t2 = time.perf_counter()
        accuracy = float(accuracy_score(split.y_test, (late_probability > 0.5).astype(np.int32)))
        mlflow.log_metrics(
            {
                "accuracy": accuracy,
                "roc_auc": float(roc_auc_score(split.y_test, late_probability)),
                "baseline_accuracy": split.majority_baseline,
                "fit_seconds": t1 - t0,
                "predict_seconds": t2 - t1,
            }
        )
        registered = tracking.log_and_register(engine.to_sklearn(model), split.x_test.head(5), args.model_name)
    print(f"run {run.info.run_id}: accuracy {accuracy:.4f} (majority baseline {split.majority_baseline:.4f})")
    if registered:
        print(f"registered {registered.name} version {registered.version}; alias {registered.alias} moved to it")
    return 0


if __name__ == "__main__":
    sys.exit(run_cli(main))
