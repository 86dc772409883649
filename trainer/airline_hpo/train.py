"""One configuration, one run (entry point ``train``): the same data checks, split, engine and promotion rule as
the search, for reproducing or promoting a configuration the search found.

The configuration is fitted on train+validation (there is nothing to choose, so validation is training data
here) and scored on the same test part the search would hold out; ``test_accuracy``, ``test_roc_auc`` and
``test_baseline_accuracy`` are logged, and ``champion`` moves only as :mod:`airline_hpo.model.promotion` decides.
"""

from __future__ import annotations

import sys
from collections.abc import Sequence

import mlflow

from airline_hpo.data import loading as data_mod
from airline_hpo.data import splits
from airline_hpo.errors import (
    AMOUNT,
    COUNT,
    NO_MODEL,
    PART,
    SEED,
    SHARE,
    OneLineParser,
    TrainerError,
    model_name,
    number,
    run_cli,
)
from airline_hpo.lifecycle import outage, precheck, shutdown
from airline_hpo.model import dataset_input, objectives, promotion, registry
from airline_hpo.model.engines import CRITERIA, ENGINE_CHOICES, ForestParams, make_engine
from airline_hpo.model.threshold import ThresholdRule
from airline_hpo.search import driver
from airline_hpo.search.refit import question, refit_and_test, threshold_on_validation, to_pandas

#: cuML's histogram bins: at least 2.
N_BINS = number(int, 2)


def _parser() -> OneLineParser:
    d = ForestParams()
    parser = OneLineParser(prog="train", description=__doc__.splitlines()[0])
    add = parser.add_argument
    add("--fpath", required=True, help="airline parquet: local path or s3://bucket/key")
    add("--n-estimators", type=COUNT, default=d.n_estimators)
    add("--max-depth", type=COUNT, default=d.max_depth)
    add("--max-features", type=SHARE, default=d.max_features)
    add("--min-samples-leaf", type=COUNT, default=d.min_samples_leaf)
    add("--max-samples", type=SHARE, default=d.max_samples, help="bootstrap share of the rows")
    add("--criterion", default=d.criterion, help=", ".join(CRITERIA))
    add("--n-bins", type=N_BINS, default=d.n_bins, help="cuML only")
    add("--n-streams", type=COUNT, default=d.n_streams, help="cuML only")
    add("--engine", default="auto", help=", ".join(ENGINE_CHOICES))
    add("--seed", type=SEED, default=42)
    add("--split", default="time", help=", ".join(splits.SPLITS) + " (time: forward in time, as the default spec)")
    add("--test-size", type=PART, default=0.2)
    add("--val-size", type=PART, default=0.2, help="kept apart as the search would, then trained on")
    add("--features", default="pre_departure", help=", ".join(splits.FEATURE_SETS))
    add("--max-rows", type=AMOUNT, default=0, help="random N rows, seeded (0 = all)")
    add("--nonfinite", default="fail", choices=data_mod.NONFINITE_CHOICES, help="rows with NaN/inf features")
    add("--model-name", type=model_name, default=NO_MODEL, help=f"register as ({NO_MODEL} = do not)")
    add("--promote", default="if_better", help=", ".join(promotion.PROMOTE_CHOICES))
    add(
        "--promote-margin",
        type=driver.MARGIN,
        default=promotion.DEFAULT_MARGIN,
        help="improvement's lower bound to clear",
    )
    add("--objective", default=objectives.DEFAULT, help=", ".join(objectives.OBJECTIVES))
    add("--tracking-timeout", type=outage.BUDGET_TYPE, default=None, help="seconds of tracking outage to ride out (90)")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    params = ForestParams.from_mapping(vars(args)).validate()
    promotion.check_mode(args.promote)
    promotion.check_margin(args.promote_margin)
    objectives.get(args.objective)
    if args.max_rows < 0:
        raise TrainerError(f"max_rows must be 0 (all) or positive (got {args.max_rows})", "pass 0 or more")
    engine = make_engine(args.engine)
    outage.apply(outage.budget_seconds(args.tracking_timeout))
    precheck.run(args.model_name)
    dataset = data_mod.load_dataset(
        args.fpath, args.max_rows, seed=args.seed, nonfinite=args.nonfinite, engine=engine.name
    )
    split = splits.make_split(dataset, args.split, args.test_size, args.val_size, args.seed, args.features)
    with mlflow.start_run(run_name=f"train-{engine.name}") as run, shutdown.guard(0):
        registry.mark_training_experiment(run.info.experiment_id)
        mlflow.set_tags({**engine.tags(), "data.source": args.fpath})
        settings = {k: getattr(args, k) for k in ("fpath", "max_rows", "split", "seed", "test_size", "val_size")}
        settings["features"] = args.features
        registry.log_params_once({**engine.logged_params(params), **settings})
        driver.log_split(split)
        dataset_input.log_dataset(dataset, args.fpath)
        _model, sk_model, test, fit_seconds = refit_and_test(engine, params, split, args.seed)
        driver.log_test(test, split)
        mlflow.log_metric("fit_seconds", fit_seconds)
        rule = ThresholdRule()  # F1 on the validation part, as the default spec
        threshold, _ = threshold_on_validation(engine, params, split, args.seed, rule, sk_model)
        decision, registered = promotion.register_and_promote(
            args.promote,
            args.model_name,
            sk_model,
            to_pandas(split.x_test),
            to_pandas(dataset.raw_features).iloc[split.test_index],
            split.y_test,
            question(dataset, split, args.seed, args.test_size, args.val_size),
            args.objective,
            args.promote_margin,
            dataset.encoding,
            threshold,
        )
    print(
        f"run {run.info.run_id}: test {args.objective} {test.value(args.objective):.4f}, "
        f"accuracy {test.accuracy:.4f}, ROC AUC {test.roc_auc:.4f} "
        f"(majority baseline {split.test_baseline_accuracy:.4f}; {split.kind} split, {len(split.y_test):,} rows)"
    )
    print(promotion.summary_line(decision, registered))
    return 0


if __name__ == "__main__":
    shutdown.install()  # SIGTERM/SIGINT: finish within the grace budget, else mark the run KILLED
    sys.exit(shutdown.closing(run_cli(main)))
