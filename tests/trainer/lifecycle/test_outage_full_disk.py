"""Which failures the trainer names as a full disk (fast: no stack). The search on a really full disk, end to end,
is ``tests/local_stack/test_full_disk.py::test_a_search_names_the_full_disk_and_keeps_every_finished_trial``."""

from __future__ import annotations

import json

import pytest
from airline_hpo.lifecycle import outage

#: What MLflow 3.17's server answered (HTTP 500) when PostgreSQL could not write: psycopg2 maps SQLSTATE 53100 to
#: ``DiskFull``; the text is PostgreSQL's, as in the stack's postgres.log on a full tmpfs.
POSTGRES_FULL = json.dumps(
    {
        "error_code": "INTERNAL_ERROR",
        "message": '(psycopg2.errors.DiskFull) could not extend file "base/16385/16423": No space left on device\n'
        "HINT:  Check free disk space.",
    }
)


def test_a_storage_error_in_a_servers_answer_is_a_full_disk(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(outage.STACK_DIR_ENV, raising=False)  # any server, not only the local stack
    part = outage.full_disk(POSTGRES_FULL)
    assert part == (
        "the tracking server's storage is full ((psycopg2.errors.DiskFull) could not extend file "
        '"base/16385/16423": No space left on device)'
    )
    assert outage.is_full_disk(part)
    assert outage.recovery(part).startswith("free space on the tracking server's disk")
    for other in ('{"message": "(psycopg2.OperationalError) connection refused"}', "Read timed out", ""):
        assert outage.full_disk(other) is None


def test_the_stack_dir_is_blamed_only_when_its_disk_is_full(monkeypatch: pytest.MonkeyPatch, tmp_path) -> None:
    monkeypatch.setenv(outage.STACK_DIR_ENV, str(tmp_path))
    assert outage.full_disk("Read timed out") is None  # room there: a timeout stays a timeout
    part = "the disk holding the stack's state directory /x is full (0 MiB free of 300 MiB), so ..."
    assert outage.is_full_disk(part)
    assert outage.recovery(part) == f"free space under {tmp_path} (`make status` shows the disk), then `make up`"
    assert not outage.is_full_disk("cannot reach the MLflow tracking server at http://127.0.0.1:5000")
