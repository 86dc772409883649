"""The MLflow Project and the training image: MLproject commands match the CLIs, the Dockerfile lints clean,
and (against the local stack) the declared commands run the whole flow: prepare, search from s3://, serve."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from airline_hpo import demo
from airline_hpo.data import storage
from mlflow import MlflowClient
from mlflow.projects._project_spec import load_project

REPO = Path(__file__).resolve().parents[2]
TRAINER = REPO / "trainer"


def _pins(path: Path) -> dict[str, str]:
    pins = {}
    for line in path.read_text().splitlines():
        line = line.split("#")[0].strip()  # inline comments explain pins
        if "==" in line:
            name, version = line.split("==")
            pins[name.split("[")[0].strip().lower()] = version.strip()  # mlflow[auth] pins mlflow
    return pins


def test_dockerfile_lints_clean_with_hadolint():
    hadolint = shutil.which("hadolint") or str(Path(sys.executable).parent / "hadolint")
    result = subprocess.run([hadolint, str(TRAINER / "Dockerfile")], capture_output=True, text=True, check=False)
    assert result.returncode == 0, result.stdout + result.stderr


def test_dockerfile_base_image_and_user():
    text = (TRAINER / "Dockerfile").read_text()
    [base] = re.findall(r"^FROM (\S+)", text, flags=re.MULTILINE)
    assert re.fullmatch(r"rapidsai/base:26\.\d\d-cuda1[23]-py3\.1[1-4]", base), base
    users = re.findall(r"^USER (\S+)", text, flags=re.MULTILINE)
    assert users and users[-1] == "1001"  # rapids, numeric so runAsNonRoot can check it


def test_image_requirements_match_the_repository_pins():
    image, repo = _pins(TRAINER / "requirements.txt"), _pins(REPO / "requirements.txt")
    assert {"mlflow", "hyperopt", "scikit-learn", "boto3"} <= set(image)
    assert {name: repo.get(name) for name in image} == image
    assert not {"pandas", "numpy", "pyarrow"} & set(image)  # RAPIDS pins those


def test_mlproject_declares_docker_env_and_entry_points():
    project = load_project(str(TRAINER))
    assert project.docker_env["image"].startswith("rapids-mlflow-trainer:")
    hyperopt = project.get_entry_point("hyperopt")
    required = {"fpath", "max_evals", "algo", "seed", "test_size", "engine", "model_name"}
    assert required <= set(hyperopt.parameters)
    assert hyperopt.parameters["fpath"].type == "string"  # an s3:// URI reaches the trainer unchanged
    assert {"prepare_data", "hyperopt", "train", "serve_check"} <= set(project._entry_points)


@pytest.mark.integration
def test_declared_commands_run_the_flow_on_the_stack(stack_env, tmp_path, capfd):
    """What `make demo` does, small: MLproject's commands as processes, reading s3://, serving the champion."""
    local = tmp_path / "airline.parquet"
    demo.run_entry_point("prepare_data", {"output": local, "rows": 3000, "seed": 3}, stack_env.env)
    uri = f"s3://{stack_env.bucket}/tests/{stack_env.experiment}/airline.parquet"
    storage.upload_file(local, uri)
    name = f"{stack_env.experiment}-demo"
    params = {"fpath": uri, "max_evals": 3, "model_name": name, "trees_max": 10, "depth_max": 5, "engine": "auto"}
    demo.run_entry_point("hyperopt", params, stack_env.env)
    demo.run_entry_point("serve_check", {"model_name": name, "timeout": 120}, stack_env.env)
    out = capfd.readouterr().out
    # the served model answered, over HTTP, both the label and the probability of each flight
    answers = re.findall(r"^\s+\S+\s+\S+->\S+ .* (ON-TIME|LATE)\s+P\(late\) = (\d\.\d\d)$", out, flags=re.MULTILINE)
    assert len(answers) == 5, out
    # LATE from the decision threshold the search chose on validation (F1) and logged on its run, not from 0.5
    champion = MlflowClient().get_model_version_by_alias(name, "champion")
    threshold = MlflowClient().get_run(champion.run_id).data.metrics["threshold"]
    assert all(
        (label == "LATE") == (float(p) >= threshold) for label, p in answers if abs(float(p) - threshold) > 0.005
    )
    assert "model server stopped" in out

    rows = dict(demo.summary(name, stack_env.tracking_uri))
    assert rows["trials"].startswith("3 (0 failed), engine sklearn; max_evals")
    assert float(rows["test log_loss"].split()[0]) > 0  # the default objective, with its bootstrap interval
    assert "(95% interval " in rows["test log_loss"]
    test_accuracy = float(rows["test log_loss"].split("accuracy ")[1].split(",")[0])
    baseline = float(rows["majority baseline"].split()[0])
    assert 0.4 < baseline < 1.0 and 0.4 < test_accuracy <= 1.0
    assert rows["promotion"].startswith("-> champion: no champion yet")
    version = MlflowClient().get_model_version_by_alias(name, "champion")
    assert MlflowClient().get_run(version.run_id).data.params["fpath"] == uri


@pytest.mark.integration
def test_search_continues_the_run_that_mlflow_run_created(stack_env, small_airline):
    """`mlflow run` (Docker or Kubernetes) creates the run, logs the entry point's parameters as typed, and
    passes MLFLOW_RUN_ID / MLFLOW_EXPERIMENT_ID: the search must become that run, not a new one."""
    client = MlflowClient()
    experiment_id = client.create_experiment(f"{stack_env.experiment}-project")
    run_id = client.create_run(experiment_id).info.run_id
    params = {"fpath": str(small_airline), "max_evals": "2", "trees_max": "5", "depth_max": "3", "model_name": "none"}
    for key, value in {**params, "test_size": ".2"}.items():  # a value spelled differently from our default
        client.log_param(run_id, key, value)
    env = {k: v for k, v in stack_env.env.items() if k != "MLFLOW_EXPERIMENT_NAME"}
    env.update({"MLFLOW_RUN_ID": run_id, "MLFLOW_EXPERIMENT_ID": experiment_id})
    saved = {k: os.environ.pop(k, None) for k in ("MLFLOW_EXPERIMENT_NAME",)}
    try:
        demo.run_entry_point("hyperopt", {**params, "test_size": ".2", "engine": "sklearn"}, env)
    finally:
        os.environ.update({k: v for k, v in saved.items() if v is not None})
    run = client.get_run(run_id)
    assert run.info.status == "FINISHED" and "test_accuracy" in run.data.metrics
    assert run.data.params["test_size"] == ".2"  # kept as `mlflow run` logged it
    trials = client.search_runs([experiment_id], f"tags.mlflow.parentRunId = '{run_id}'")
    assert len(trials) == 2
    assert len(client.search_runs([experiment_id])) == 3  # the project's run and its two trials, nothing else
