"""The Kubernetes Job that ``mlflow run --backend kubernetes`` creates, built by MLflow's own code.

The bridge's files, the Ray driver's template and the trainer's entry points are all checked against what MLflow
makes of them; this is the one place that calls MLflow's job builder, so every test builds the Job the same way
(MLflow's loader for the backend config, its run command, its Job definition; only the API call is left out).
"""

from __future__ import annotations

import copy
import json
from pathlib import Path

from mlflow.projects import _parse_kubernetes_config
from mlflow.projects.kubernetes import _get_kubernetes_job_definition, _get_run_command

#: What MLflow's backend passes in for a run; the Job must override the tracking URI with KUBE_MLFLOW_TRACKING_URI.
RUN_ENV = {"MLFLOW_RUN_ID": "abc123", "MLFLOW_TRACKING_URI": "http://localhost:5000", "MLFLOW_EXPERIMENT_ID": "1"}


def job_template_from_backend_config(config_path: Path) -> dict:
    """The Job template MLflow reads, exactly as ``mlflow run --backend-config <config_path>`` reads it."""
    return _parse_kubernetes_config(json.loads(config_path.read_text()))["kube-job-template"]


def job_mlflow_creates(job_template: dict, image_tag: str, commands: list[str]) -> dict:
    """The Job MLflow creates from ``job_template`` for an image pushed as ``image_tag`` running ``commands``."""
    return _get_kubernetes_job_definition(
        project_name="airline-hpo",
        image_tag=image_tag,
        image_digest="sha256:" + "0" * 64,
        command=_get_run_command(commands),
        env_vars=dict(RUN_ENV),
        job_template=copy.deepcopy(job_template),
    )
