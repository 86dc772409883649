"""The ``score`` entry point against the real local stack: predictions equal the model's own ``predict`` for a
file larger than its batch size (local and s3:// in and out), the run records what scored what, rows the model
cannot score are kept and reported, and bad input is one line with no output left behind."""

from __future__ import annotations

import io
import re
from contextlib import redirect_stdout

import mlflow
import numpy as np
import pandas as pd
import pyarrow.parquet as pq
import pytest
from airline_hpo import train
from airline_hpo.data import storage
from airline_hpo.errors import run_cli
from airline_hpo.serving import score
from mlflow import MlflowClient


@pytest.fixture(scope="module")
def champion(module_stack_env, small_airline) -> str:
    name = f"{module_stack_env.experiment}-scored"
    argv = ["--fpath", str(small_airline), "--engine", "sklearn", "--seed", "4", "--model-name", name]
    with redirect_stdout(io.StringIO()):
        assert run_cli(train.main, [*argv, "--n-estimators", "8", "--max-depth", "6"]) == 0
    return name


@pytest.fixture(scope="module")
def flights(small_airline, tmp_path_factory) -> tuple[str, pd.DataFrame]:
    """3,000 flights in row groups of 400: larger than the 700-row batches the tests use."""
    table = pd.read_parquet(small_airline)
    path = tmp_path_factory.mktemp("score") / "flights.parquet"
    table.to_parquet(path, index=False, row_group_size=400)
    return str(path), table


def _score(*argv: str) -> tuple[int, str]:
    out = io.StringIO()
    with redirect_stdout(out):
        code = run_cli(score.main, list(argv))
    return code, out.getvalue()


def _expected(name: str, table: pd.DataFrame) -> pd.DataFrame:
    model = mlflow.pyfunc.load_model(f"models:/{name}@champion")
    columns = model.metadata.get_input_schema().input_names()
    return model.predict(table[columns], params={"output": "both"})


@pytest.mark.integration
def test_scores_equal_the_models_own_predict_in_batches(champion, flights, tmp_path):
    path, table = flights
    output = tmp_path / "out" / "scores.parquet"
    code, printed = _score(
        "--input", path, "--output", str(output), "--model", f"models:/{champion}@champion", "--batch-size", "700"
    )
    assert code == 0, printed
    scored = pd.read_parquet(output)
    expected = _expected(champion, table)
    assert list(scored.columns) == [*score.KEY_COLUMNS, "probability", "label"]
    pd.testing.assert_frame_equal(scored[list(score.KEY_COLUMNS)], table[list(score.KEY_COLUMNS)])
    np.testing.assert_allclose(scored["probability"].to_numpy(dtype=float), expected["probability"])
    assert scored["label"].tolist() == expected["label"].tolist()
    assert list(tmp_path.joinpath("out").iterdir()) == [output]  # no temporary file left beside it

    run_id = re.search(r"; run ([0-9a-f]{32})", printed).group(1)
    run = MlflowClient().get_run(run_id)
    assert run.data.tags["score.model_version"] == "1"
    assert run.data.metrics["rows_in"] == run.data.metrics["rows_scored"] == len(table)
    assert run.data.metrics["batches"] == -(-len(table) // 700)
    assert run.data.metrics["rows_rejected"] == 0 and run.data.metrics["seconds_predict"] > 0


@pytest.mark.integration
def test_s3_in_and_out_and_rejected_rows_are_kept_and_reported(champion, flights, module_stack_env, tmp_path):
    _path, table = flights
    broken = table.assign(Distance=table["Distance"].where(table.index % 500 != 3))  # 6 rows without a distance
    local = tmp_path / "broken.parquet"
    broken.to_parquet(local, index=False, row_group_size=400)
    bucket = module_stack_env.bucket
    storage.upload_file(local, f"s3://{bucket}/score-test/in.parquet")
    code, printed = _score(
        "--input",
        f"s3://{bucket}/score-test/in.parquet",
        "--output",
        f"s3://{bucket}/score-test/out.parquet",
        "--model",
        f"models:/{champion}@champion",
        "--batch-size",
        "1000",
    )
    assert code == 0, printed
    assert (
        "6 row(s) not scored (missing or non-finite features), first: row 3 (Distance), row 503 (Distance)" in printed
    )
    scored = pq.read_table(io.BytesIO(storage.read_bytes(f"s3://{bucket}/score-test/out.parquet"))).to_pandas()
    assert len(scored) == len(table)
    missing = broken["Distance"].isna().to_numpy()
    assert scored["label"].isna().to_numpy().tolist() == missing.tolist()
    assert scored["probability"].isna().to_numpy().tolist() == missing.tolist()
    expected = _expected(champion, table[~missing])
    np.testing.assert_allclose(scored["probability"][~missing].to_numpy(dtype=float), expected["probability"])


@pytest.mark.integration
@pytest.mark.parametrize(
    ("case", "words"),
    [
        ("nocolumn", "lacks column(s) Distance that models:/"),
        ("text", "column(s) Origin (large_string) are not numbers"),
        ("unknown", "no model version"),
        ("notfile", "is not a file"),
    ],
)
def test_bad_input_is_one_line_and_no_output(case, words, champion, flights, tmp_path, capsys):
    path, table = flights
    model = f"models:/{champion}@champion"
    if case == "nocolumn":
        table.drop(columns=["Distance"]).to_parquet(path := str(tmp_path / "in.parquet"))
    elif case == "text":
        table.assign(Origin=table["Origin"].astype(str)).to_parquet(path := str(tmp_path / "in.parquet"))
    elif case == "unknown":
        model = f"models:/{champion}-nope@champion"
    else:
        path = str(tmp_path / "nope.parquet")
    output = tmp_path / "scores.parquet"
    code, _ = _score("--input", path, "--output", str(output), "--model", model)
    err = capsys.readouterr().err.strip()
    assert code == 2
    assert len(err.splitlines()) == 1 and err.startswith("error: ") and words in err
    assert not output.exists() and not list(tmp_path.glob(".score-*"))
