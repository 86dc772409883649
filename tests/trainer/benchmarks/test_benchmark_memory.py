"""`make bench`'s memory figure: loading a 2,000,000-row table costs at most 3x the table's size at peak."""

from __future__ import annotations

import re

import pytest

from benchmarks import load_memory


@pytest.mark.integration
def test_memory_benchmark_reports_the_load_path_within_the_goal(stack_env, capsys):
    assert load_memory.main(["--rows", "2000000", "--use-env"]) == 0
    out = capsys.readouterr().out
    with capsys.disabled():
        print("\n" + out)  # the figure, in the test log
    assert "loading 2,000,000 flights, 14 columns (112.0 MB in memory" in out
    ratios = {
        label.strip(): float(ratio)
        for label, ratio in re.findall(r"^(.{44})\s+\d+ MB\s+\d+ MB\s+\d+ MB\s+([\d.]+)x", out, flags=re.MULTILINE)
    }
    assert set(ratios) == {
        "this trainer, local parquet",
        "this trainer, s3:// (ranged reads)",
        "reference: pandas.read_parquet + astype",
    }, out
    assert ratios["this trainer, local parquet"] <= 3.0 and ratios["this trainer, s3:// (ranged reads)"] <= 3.0
    assert ratios["this trainer, local parquet"] < ratios["reference: pandas.read_parquet + astype"]
    assert re.search(r"goal <= 3x the table: met \(worst [\d.]+x\)$", out.strip()), out


def test_a_fresh_process_measures_the_load_not_the_parent(tmp_path, airline_table):
    """A big parent must not inflate the child's peak (``ru_maxrss`` would keep the parent's from before exec)."""
    path = tmp_path / "small.parquet"
    airline_table.head(50_000).to_parquet(path, index=False)
    ballast = bytearray(400 * 1024 * 1024)  # the parent grows by 400 MB before starting the child
    measured = load_memory.measure(str(path))
    del ballast
    assert measured.rows == 50_000 and measured.table_bytes == 50_000 * 14 * 4
    assert measured.peak < 400e6 and measured.ratio < 10
