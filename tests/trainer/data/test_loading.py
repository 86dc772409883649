"""Loading and checking the airline table: local and s3, once per process, and every bad input's message."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from airline_hpo.data import loading as data_mod
from airline_hpo.data import storage
from airline_hpo.data.schema import FEATURES, LABEL
from airline_hpo.errors import TrainerError


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
    real_open = storage.local_file
    monkeypatch.setattr(storage, "local_file", lambda uri: calls.append(uri) or real_open(uri))
    first = data_mod.load_dataset(str(small_airline))
    second = data_mod.load_dataset(str(small_airline))
    assert first is second and calls == [str(small_airline)]


def test_max_rows_is_a_seeded_sample_from_the_whole_year(small_airline):
    """The prepared file is ordered by month: its first 500 rows are one or two months only."""
    whole = data_mod.load_dataset(str(small_airline))
    assert whole.features["Month"].iloc[:500].nunique() <= 2
    one = data_mod.load_dataset(str(small_airline), max_rows=500, seed=1)
    again = data_mod.load_dataset(str(small_airline), max_rows=500, seed=1)
    other = data_mod.load_dataset(str(small_airline), max_rows=500, seed=2)
    assert one.rows == 500 and set(one.features["Month"]) == set(range(1, 13))
    pd.testing.assert_frame_equal(one.features, again.features)
    assert not one.features.equals(other.features)
    # the rows are the file's own rows with their own labels, kept in file order
    positions = whole.features.assign(label=whole.label, position=np.arange(whole.rows))
    merged = one.features.assign(label=one.label).merge(positions, how="left")
    assert len(merged) == 500 and merged["position"].notna().all()
    assert merged["position"].is_monotonic_increasing


def _with_nonfinite(small_airline, tmp_path) -> tuple[str, pd.DataFrame]:
    table = pd.read_parquet(small_airline)
    table.loc[[3, 10, 11], "Distance"] = np.nan
    table.loc[[10, 20], "CRSDepTime"] = np.inf
    table.loc[[30], "CRSDepTime"] = -np.inf
    table["FlightNum"] = table["FlightNum"].astype(np.float64)
    table.loc[[40], "FlightNum"] = 1e300  # finite in float64, infinite once cast to float32 for the engines
    path = tmp_path / "nonfinite.parquet"
    table.to_parquet(path, index=False)
    return str(path), table


def test_missing_or_infinite_features_fail_in_one_line_naming_columns_and_counts(small_airline, tmp_path):
    path, _ = _with_nonfinite(small_airline, tmp_path)
    with pytest.raises(TrainerError) as caught:
        data_mod.load_dataset(path)
    message = str(caught.value)
    assert "\n" not in message
    assert "in 6 of 3,000 rows" in message
    assert "FlightNum 1 infinite" in message
    assert "CRSDepTime 3 infinite" in message and "Distance 3 missing" in message
    assert "nonfinite=drop" in message


def test_nonfinite_drop_drops_those_rows_and_says_how_many(small_airline, tmp_path, capsys):
    path, table = _with_nonfinite(small_airline, tmp_path)
    dataset = data_mod.load_dataset(path, nonfinite="drop")
    assert dataset.rows == 2994 and dataset.dropped_rows == 6
    assert np.isfinite(dataset.features.to_numpy()).all()
    kept = table.drop(index=[3, 10, 11, 20, 30, 40]).reset_index(drop=True)
    np.testing.assert_array_equal(dataset.label, kept[LABEL].to_numpy())
    np.testing.assert_array_equal(dataset.features["Distance"], kept["Distance"].astype(np.float32))
    assert "dropped 6 of 3,000 rows" in capsys.readouterr().err


def test_unknown_nonfinite_choice(small_airline):
    with pytest.raises(TrainerError, match="unknown nonfinite 'skip'"):
        data_mod.load_dataset(str(small_airline), nonfinite="skip")


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


@pytest.mark.integration
def test_s3_read_fetches_only_the_needed_columns(stack_env, small_airline, tmp_path):
    """A file with a wide extra column (most of its bytes): only the 14 model columns come over the network."""
    table = pd.read_parquet(small_airline)
    table["Remarks"] = [f"free text {i} " * 40 for i in range(len(table))]
    path = tmp_path / "wide.parquet"
    table.to_parquet(path, index=False, compression=None)
    uri = f"s3://{stack_env.bucket}/tests/{stack_env.experiment}/wide.parquet"
    storage.upload_file(path, uri)
    size = path.stat().st_size
    dataset = data_mod.load_dataset(uri)
    assert dataset.rows == 3000
    assert 0 < dataset.bytes_fetched < size / 10, (dataset.bytes_fetched, size)
    pd.testing.assert_frame_equal(dataset.features, data_mod.load_dataset(str(path)).features)


@pytest.mark.integration
def test_storage_options_for_cudf_reach_the_stack_s3(stack_env, small_airline):
    """cuDF hands ``storage_options`` to s3fs, which passes ``key``/``secret``/``token`` as the botocore
    credentials, ``client_kwargs`` to ``create_client`` and ``config_kwargs`` to ``botocore.Config``. s3fs itself
    cannot be installed beside our boto3 pin, so botocore gets the same options the same way here."""
    import boto3
    from botocore.config import Config

    uri = f"s3://{stack_env.bucket}/tests/{stack_env.experiment}/opts.parquet"
    storage.upload_file(small_airline, uri)
    options = storage.fsspec_storage_options()
    assert options["client_kwargs"]["endpoint_url"] == stack_env.env["MLFLOW_S3_ENDPOINT_URL"]
    client = boto3.client(
        "s3",
        aws_access_key_id=options["key"],
        aws_secret_access_key=options["secret"],
        aws_session_token=options.get("token"),
        config=Config(**options["config_kwargs"]),
        **options["client_kwargs"],
    )
    bucket, key = storage.split_s3_uri(uri)
    assert client.get_object(Bucket=bucket, Key=key)["Body"].read() == small_airline.read_bytes()


def test_storage_options_without_keys_leave_credentials_to_the_default_chain(monkeypatch):
    """On EKS with IRSA there is no key pair in the environment: s3fs must find credentials itself."""
    for name in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN", *storage.ENDPOINT_VARS):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("AWS_DEFAULT_REGION", "eu-west-1")
    assert storage.fsspec_storage_options() == {"client_kwargs": {"region_name": "eu-west-1"}}
