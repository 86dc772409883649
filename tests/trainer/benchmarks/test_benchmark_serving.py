"""`make bench`'s serving figures: the benchmark runs against the real local stack and prints its table (one-row
p50/p99 on both paths, 10,000-row rows/s against in-process predict, where that request's time goes step by
step, score rows/s, the goal's verdict). The figures themselves are not asserted: speed goals live in the
benchmark, not in a timed test."""

from __future__ import annotations

import re

import pytest

from benchmarks import serving


@pytest.fixture
def stack_client_env(local_stack, monkeypatch: pytest.MonkeyPatch) -> None:
    for name, value in local_stack.env.items():
        monkeypatch.setenv(name, value)


@pytest.mark.integration
def test_serving_benchmark_prints_every_figure(stack_client_env, tmp_path, capsys):
    from airline_hpo.data import prepare

    fpath = str(tmp_path / "bench.parquet")
    prepare.prepare(fpath, rows=20_000, seed=0)
    argv = ["--fpath", fpath, "--trees", "5", "--depth", "6", "--requests", "20", "--repeats", "1", "--use-env"]
    assert serving.main(argv) == 0
    out = capsys.readouterr().out
    with capsys.disabled():
        print("\n" + out)
    number = r"\s+[\d.]+ms\s+[\d.]+ms$"
    assert re.search(r"^  scoring server \(what a cluster pod runs\)" + number, out, re.MULTILINE), out
    assert re.search(r"^  local endpoint \(make serve: proxy \+ socket\)" + number, out, re.MULTILINE), out
    assert re.search(r"^  HTTP, local endpoint\s+[\d.]+\s+[\d,]+\s+[\d.]+x$", out, re.MULTILINE), out
    assert re.search(r"^  in-process model.predict\s+[\d.]+\s+[\d,]+\s+1.00x$", out, re.MULTILINE), out
    assert re.search(r"^  HTTP, scoring server\s+[\d.]+\s+[\d,]+\s+[\d.]+x$", out, re.MULTILINE), out
    assert re.search(r"^  20,000 rows, 1 batch\(es\)\s+[\d.]+\s+[\d,]+$", out, re.MULTILINE), out
    steps = re.findall(r"^  (client|server|HTTP): .+?\s+-?[\d.]+\s+-?\d+%$", out, re.MULTILINE)
    assert steps == ["client", "server", "server", "server", "client", "HTTP"], out
    assert re.search(
        r"^HTTP overhead on a 10,000-row request: [+-]\d+% over in-process predict; goal <= 25%: (met|NOT met)$",
        out,
        re.MULTILINE,
    ), out
    assert re.search(r"^  HTTP adds -?\d+ ms to the scoring server's request and -?\d+ ms to the local", out, re.M), out
