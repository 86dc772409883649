"""Loading and checking the airline table: local and s3, once per process, and every bad input's message."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from airline_hpo import data as data_mod
from airline_hpo import storage
from airline_hpo.errors import TrainerError
from airline_hpo.schema import FEATURES, LABEL


def test_loads_prepared_file_as_float32(small_airline):
    dataset = data_mod.load_dataset(str(small_airline))
    assert dataset.rows == 3000
    assert list(dataset.features.columns) == list(FEATURES)
    assert all(dtype == np.float32 for dtype in dataset.features.dtypes)
    assert dataset.label.dtype == np.int32 and set(np.unique(dataset.label)) == {0, 1}


def test_accepts_the_real_airline_sample_layout(tmp_path):
    """airline_small.parquet: float32 features (already integer-coded), int32 label, about 16% late.
    It cannot be downloaded here, so build a file with exactly that layout and read it unchanged."""
    rng = np.random.default_rng(0)
    real_like = pd.DataFrame({name: rng.integers(0, 3000, 400).astype(np.float32) for name in FEATURES})
    real_like[LABEL] = (rng.random(400) < 0.16).astype(np.int32)
    path = tmp_path / "airline_small.parquet"
    real_like.to_parquet(path, index=False)
    dataset = data_mod.load_dataset(str(path))
    assert dataset.rows == 400
    np.testing.assert_array_equal(dataset.label, real_like[LABEL].to_numpy())
    pd.testing.assert_frame_equal(dataset.features, real_like[list(FEATURES)])


def test_extra_columns_are_ignored_and_ints_become_float32(small_airline, tmp_path):
    table = pd.read_parquet(small_airline)
    table["Distance"] = table["Distance"].astype(np.int64)
    table["Cancelled"] = 0
    path = tmp_path / "extra.parquet"
    table.to_parquet(path)
    dataset = data_mod.load_dataset(str(path))
    assert "Cancelled" not in dataset.features and dataset.features["Distance"].dtype == np.float32


def test_read_once_per_process(small_airline, monkeypatch):
    calls = []
    real_read = storage.read_bytes
    monkeypatch.setattr(storage, "read_bytes", lambda uri: calls.append(uri) or real_read(uri))
    first = data_mod.load_dataset(str(small_airline))
    second = data_mod.load_dataset(str(small_airline))
    assert first is second and calls == [str(small_airline)]


def test_max_rows_keeps_first_rows(small_airline):
    assert data_mod.load_dataset(str(small_airline), max_rows=500).rows == 500


def _write(tmp_path, table: pd.DataFrame, name: str = "bad.parquet") -> str:
    path = tmp_path / name
    table.to_parquet(path, index=False)
    return str(path)


def _bad_inputs(tmp_path, small_airline):
    """Each bad input with words its one-line message must contain."""
    good = pd.read_parquet(small_airline)
    (tmp_path / "empty.parquet").write_bytes(b"")
    (tmp_path / "garbage.parquet").write_bytes(b"this is not parquet at all")
    (tmp_path / "a_dir.parquet").mkdir()
    return [
        (str(tmp_path / "missing.parquet"), ["does not exist", "prepare"]),
        (str(tmp_path / "a_dir.parquet"), ["directory"]),
        (str(tmp_path / "empty.parquet"), ["empty"]),
        (str(tmp_path / "garbage.parquet"), ["not a readable parquet"]),
        (_write(tmp_path, good.drop(columns=[LABEL]), "nolabel.parquet"), ["no label column", LABEL]),
        (_write(tmp_path, good.drop(columns=["Origin", "Dest"]), "nocol.parquet"), ["lacks", "Origin, Dest"]),
        (_write(tmp_path, good.iloc[:0], "norows.parquet"), ["no rows"]),
        (_write(tmp_path, good.assign(**{LABEL: 1}), "oneclass.parquet"), ["one class"]),
        (_write(tmp_path, good.assign(**{LABEL: 2}), "twos.parquet"), ["besides 0 and 1"]),
        (_write(tmp_path, good.assign(Origin="JFK"), "text.parquet"), ["not numeric", "Origin"]),
    ]


def test_bad_inputs_name_problem_and_fix(tmp_path, small_airline):
    for fpath, words in _bad_inputs(tmp_path, small_airline):
        with pytest.raises(TrainerError) as caught:
            data_mod.load_dataset(fpath)
        message = str(caught.value)
        assert "\n" not in message and "; " in message, message  # one line: problem; fix
        for word in words:
            assert word in message, (fpath, message)


@pytest.mark.integration
def test_reads_s3_through_the_stack_endpoint(stack_env, small_airline):
    uri = f"s3://{stack_env.bucket}/tests/{stack_env.experiment}/airline.parquet"
    storage.upload_file(small_airline, uri)
    dataset = data_mod.load_dataset(uri)
    assert dataset.rows == 3000 and dataset.source == uri


@pytest.mark.integration
def test_missing_s3_object_is_one_line(stack_env):
    with pytest.raises(TrainerError, match="does not exist"):
        data_mod.load_dataset(f"s3://{stack_env.bucket}/no/such/file.parquet")
    with pytest.raises(TrainerError, match="does not exist"):
        data_mod.load_dataset("s3://no-such-bucket-here/file.parquet")
