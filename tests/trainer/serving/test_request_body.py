"""The body docs/serving.md tells clients to send (``invocation``: ``dataframe_split`` written by orjson from the
frame's numpy values, ``orient=columns``) reaches the model as the frame it was built from: through MLflow's
real scoring server the answers equal the model's own ``predict`` on the same rows, and MLflow's own parser
reads text, timestamps and missing values back as they were sent. A value JSON cannot carry is one line. In a
scoring server (only there) the model freezes the start-up objects out of the garbage collector's scans."""

from __future__ import annotations

import io
import os
import subprocess
import sys
from contextlib import redirect_stdout

import mlflow
import numpy as np
import pandas as pd
import pytest
import requests
from airline_hpo import train
from airline_hpo.errors import TrainerError, run_cli
from airline_hpo.model.registry import model_signature
from airline_hpo.serving.server import JSON_HEADERS, ModelServer, answer, free_port, invocation, predict
from mlflow.models import Model
from mlflow.pyfunc import scoring_server


@pytest.mark.integration
def test_the_documented_body_gets_the_models_own_predictions_from_mlflows_scoring_server(
    stack_env, small_airline, tmp_path
):
    """Float32 rows as the trainer stores them (the benchmark's kind), one value missing, through `mlflow models
    serve` (what a cluster pod runs): labels equal, probabilities equal to the last bits the forest's threads
    leave, for `both` (as columns) and `probability`."""
    name = f"{stack_env.experiment}-body"
    argv = ["--fpath", str(small_airline), "--engine", "sklearn", "--model-name", name, "--promote", "always"]
    with redirect_stdout(io.StringIO()):
        assert run_cli(train.main, [*argv, "--n-estimators", "8", "--max-depth", "5"]) == 0
    uri = f"models:/{name}/1"
    model = mlflow.pyfunc.load_model(uri)
    rows = pd.read_parquet(small_airline, columns=model.metadata.get_input_schema().input_names()).head(500)
    assert set(rows.dtypes.astype(str)) == {"float32"}
    rows.iloc[3, 2] = np.nan  # a missing value goes as null and comes back NaN
    own = model.predict(rows, params={"output": "both"})

    with ModelServer(uri, "127.0.0.1", free_port(), tmp_path / "serve.log") as server:
        server.wait_ready(300)
        body = invocation(rows, "both")
        raw = requests.post(f"{server.url}/invocations", data=body, headers=JSON_HEADERS, timeout=60)
        assert raw.status_code == 200, raw.text
        columns = answer(raw.content)
        served = pd.DataFrame(predict(server.url, rows, "both"))  # the client helper: one dict a row
        probability = predict(server.url, rows, "probability")

    assert set(columns) == {"label", "probability"} and len(columns["label"]) == len(rows)  # columns, not records
    np.testing.assert_array_equal(columns["label"], own["label"])
    np.testing.assert_array_equal(served["label"], own["label"])
    np.testing.assert_allclose(columns["probability"], own["probability"], rtol=1e-12)
    np.testing.assert_allclose(served["probability"], own["probability"], rtol=1e-12)
    np.testing.assert_allclose(probability, own["probability"], rtol=1e-12)

    # Loaded as MLflow's scoring server loads it, the model freezes the process's start-up objects out of the
    # garbage collector's scans (each full scan costs a 10,000-row request hundreds of ms); a plain load_model
    # (a notebook, `score`) leaves the collector alone.
    frozen = "import gc, mlflow, sys; mlflow.pyfunc.load_model(sys.argv[1]); print(gc.get_freeze_count())"
    plain = subprocess.run([sys.executable, "-c", frozen, uri], capture_output=True, text=True, check=True)
    server_env = {**os.environ, scoring_server._SERVER_MODEL_PATH: uri}
    in_server = subprocess.run(
        [sys.executable, "-c", frozen, uri], capture_output=True, text=True, check=True, env=server_env
    )
    assert int(plain.stdout.split()[-1]) == 0
    assert int(in_server.stdout.split()[-1]) > 100_000


def test_text_timestamps_and_missing_values_reach_the_model_as_sent():
    """MLflow's own parser (what its /invocations handler runs) with the signature we log reads the body back
    into the frame it was built from: text, naive timestamps (ISO 8601), numbers, a missing number (NaN)."""
    flights = pd.DataFrame(
        {
            "carrier": ["UA", "AA", "B6"],
            "when": pd.to_datetime(["2013-01-01 05:15", "2013-01-02 06:00", "2013-12-31 23:59"]),
            "miles": [1400.0, np.nan, 2475.0],
            "month": [1, 1, 12],
        }
    )
    metadata = Model(signature=model_signature(flights))
    parsed = scoring_server._parse_json_data(invocation(flights, "both"), metadata, metadata.get_input_schema())
    assert parsed.params == {"output": "both", "orient": "columns"}
    pd.testing.assert_frame_equal(parsed.data, flights, check_dtype=False)
    assert pd.api.types.is_datetime64_dtype(parsed.data["when"])


def test_an_infinite_value_is_one_line_not_a_silent_null():
    """JSON has no infinity (orjson would write it as null, i.e. missing): the client refuses it."""
    flights = pd.DataFrame({"Distance": [2475.0, np.inf], "Month": [1.0, 2.0]})
    with pytest.raises(TrainerError, match="infinite value, which JSON cannot carry"):
        invocation(flights, "both")
