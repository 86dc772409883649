"""The container command MLflow's Kubernetes backend builds for an entry point (shared by the trainer's tests).

Beside tests/trainer/conftest.py, so every test under tests/trainer imports it by bare name.
"""

from __future__ import annotations

import json
import tempfile
from pathlib import Path

from mlflow.projects._project_spec import load_project
from mlflow.projects.utils import get_entry_point_command

from tests.mlflow_kube_job import job_mlflow_creates

TRAINER = Path(__file__).resolve().parents[2] / "trainer"
TEMPLATE = json.loads((Path(__file__).resolve().parent / "cluster" / "fixtures" / "stack_outputs.json").read_text())[
    "kube_job_template"
]


def job_command(entry_point: str, parameters: dict[str, object]) -> list[str]:
    """The container ``command`` of the Job that `mlflow run -e ENTRY_POINT -P k=v ... --backend kubernetes`
    creates (MLflow's code from the project loader to the Job definition; only the API call is left out)."""
    project = load_project(str(TRAINER))
    with tempfile.TemporaryDirectory() as storage_dir:
        commands = get_entry_point_command(
            project, entry_point, {k: str(v) for k, v in parameters.items()}, storage_dir
        )
    job = job_mlflow_creates(TEMPLATE, "registry.example.com/airline-hpo:5d41402", commands)
    return job["spec"]["template"]["spec"]["containers"][0]["command"]
