"""Every entry point with the argv a Kubernetes Job really runs.

`mlflow run --backend kubernetes` builds the Job's container ``command`` with MLflow's own code: the project's
loader and ``get_entry_point_command`` (each parameter value shell-quoted into one command string), then
``kubernetes._get_run_command`` (split, and every token quoted AGAIN) and ``_get_kubernetes_job_definition``.
The container runs that list with no shell, so nothing removes the quotes: ``-P model_name=""`` arrives as the
two characters ``''``. These tests take the ``command`` list out of the Job MLflow builds and hand it, as argv,
to our parsers or to a real process, never through ``shlex.split`` or a shell.
"""

from __future__ import annotations

import importlib
import subprocess
from pathlib import Path

import pandas as pd
import pytest
from airline_hpo import demo
from airline_hpo.errors import TrainerError
from kube_job_argv import TRAINER, job_command
from mlflow import MlflowClient

ENTRY_POINTS = ("prepare_data", "hyperopt", "train", "serve_check")


def parse(argv: list[str]):
    """Our CLI parser of the module the argv runs (``python -m airline_hpo.X ...``), on the rest of argv."""
    assert argv[:2] == ["python", "-m"] and argv[2].startswith("airline_hpo.")
    module = importlib.import_module(argv[2])
    if hasattr(module, "__path__"):  # a package: `python -m` runs its __main__, which calls the driver's main
        module = importlib.import_module(f"{argv[2]}.__main__").driver
    return module._parser().parse_args(argv[3:])


def run_process(argv: list[str], env: dict[str, str] | None = None, cwd: Path = TRAINER):
    """Run the Job's command list as the container would: argv as is, no shell, in the project directory."""
    return subprocess.run(
        argv, cwd=cwd, env=demo.process_env({**(env or {}), "PYTHONPATH": str(TRAINER)}), capture_output=True,
        text=True, timeout=300, check=False,
    )  # fmt: skip


@pytest.mark.parametrize("entry_point", ENTRY_POINTS)
def test_every_entry_point_parses_its_defaults_as_the_job_runs_them(entry_point):
    argv = job_command(entry_point, {})
    assert not [token for token in argv if token.startswith("'")], argv  # no default needs quoting
    parse(argv)


def test_train_registers_nothing_by_default_and_hyperopt_takes_none():
    assert parse(job_command("train", {})).model_name == ""  # default `none`: log the model, register nothing
    assert parse(job_command("hyperopt", {"model_name": "none"})).model_name == ""
    assert parse(job_command("hyperopt", {})).model_name == "airline-delay"


def test_realistic_values_arrive_unchanged():
    values = {
        "fpath": "s3://rapids-mlflow-data-1a2b/datasets/airline_small.parquet",
        "model_name": "airline-delay_v2.1",
        "nonfinite": "drop",
        "algo": "rand",
        "engine": "sklearn",
        "max_rows": 50000,
        "max_evals": 30,
    }
    args = parse(job_command("hyperopt", values))
    assert (args.fpath, args.model_name, args.nonfinite, args.algo, args.engine) == (
        values["fpath"], "airline-delay_v2.1", "drop", "rand", "sklearn",
    )  # fmt: skip
    assert (args.max_rows, args.max_evals) == (50000, 30)
    args = parse(job_command("train", {"fpath": values["fpath"], "model_name": "airline-delay", "nonfinite": "drop"}))
    assert (args.fpath, args.model_name, args.nonfinite) == (values["fpath"], "airline-delay", "drop")


QUOTED = [
    ("hyperopt", "model_name", ""),
    ("hyperopt", "fpath", "s3://bucket/my data.parquet"),
    ("train", "model_name", ""),
    ("train", "model_name", "airline delay"),
    ("prepare_data", "output", "/tmp/my data.parquet"),
    ("serve_check", "alias", ""),
    ("serve_check", "model_name", "airline delay"),
]


@pytest.mark.parametrize(("entry_point", "name", "value"), QUOTED)
def test_a_value_that_arrives_quoted_is_refused_in_one_line(entry_point, name, value):
    argv = job_command(entry_point, {name: value})
    option = "--" + name.replace("_", "-")
    assert argv[argv.index(option) + 1] == f"'{value}'"  # what MLflow really delivers
    with pytest.raises(TrainerError) as caught:
        parse(argv)
    message = str(caught.value)
    assert "\n" not in message and f"{option} arrived quoted as '{value}'" in message
    assert "model_name=none" in message


@pytest.mark.parametrize(
    ("entry_point", "name"),
    [("prepare_data", "output"), ("hyperopt", "model_name"), ("train", "model_name"), ("serve_check", "alias")],
)
def test_an_empty_value_stops_the_real_process_before_any_work(entry_point, name, tmp_path):
    """The bug this guards against: `-P model_name=""` registered a model named ''. Now: exit 2, one line."""
    argv = job_command(entry_point, {name: ""})
    result = run_process(argv, {"MLFLOW_TRACKING_URI": "http://127.0.0.1:9"}, cwd=tmp_path)
    assert result.returncode == 2, result.stderr
    assert result.stderr.count("\n") == 1 and "Traceback" not in result.stderr
    assert f"--{name.replace('_', '-')} arrived quoted as ''" in result.stderr
    assert list(tmp_path.iterdir()) == []  # nothing written


@pytest.mark.parametrize("entry_point", ["hyperopt", "train", "serve_check"])
def test_default_argv_gets_past_parsing_in_the_real_process(entry_point):
    """With every default, the process parses its argv and goes on to its first real step: reaching MLflow."""
    result = run_process(job_command(entry_point, {}), {"MLFLOW_TRACKING_URI": "http://127.0.0.1:9"})
    assert result.returncode == 2, result.stderr
    assert result.stderr.startswith("error: cannot reach the MLflow tracking server at http://127.0.0.1:9")


def test_prepare_data_runs_from_the_job_argv(tmp_path):
    output = tmp_path / "airline.parquet"
    result = run_process(job_command("prepare_data", {"output": output, "rows": 800, "seed": 5}))
    assert result.returncode == 0, result.stderr
    assert len(pd.read_parquet(output)) == 800 and "wrote 800 flights" in result.stdout


@pytest.mark.integration
def test_hyperopt_with_model_name_none_registers_nothing(stack_env, small_airline):
    params = {"fpath": small_airline, "max_evals": 2, "trees_max": 5, "depth_max": 3, "model_name": "none"}
    result = run_process(job_command("hyperopt", {**params, "engine": "sklearn"}), stack_env.env)
    assert result.returncode == 0, result.stderr
    client = MlflowClient()
    experiment = client.get_experiment_by_name(stack_env.experiment)
    runs = client.search_runs([experiment.experiment_id])
    [parent] = [run for run in runs if "mlflow.parentRunId" not in run.data.tags]
    assert len(runs) == 3 and parent.info.status == "FINISHED"
    assert parent.data.params["model_name"] == ""
    assert not client.search_model_versions(f"run_id = '{parent.info.run_id}'")  # logged, not registered
