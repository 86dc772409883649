"""Links into the MLflow UI, built in one place, so every link the project prints opens the view it promises.

Why the query string: MLflow 3.17's UI picks an experiment's page mode from its *workflow type*, not from the
experiment: the ``workflowType`` URL parameter (``genai`` or ``machine_learning``) if present, else the browser's
saved choice (localStorage ``mlflow.workflowType``), else ``genai``. Opened without it, ``/#/experiments/<id>``
lands on the GenAI overview ("Traces 0, No data available"), not on the search's runs. (Read in the UI bundle
MLflow 3.17 ships, ``mlflow/server/js/build/static/js``: the workflow-type provider reads
``searchParams.get("workflowType")`` before its stored value; ``useExperimentKind`` maps it to the page mode
while the workflow-navigation flag is on, which the OSS build hard-wires; the experiment page's default-tab
redirect goes to "Runs" for a non-GenAI kind.) ``mlflow.experimentKind`` is the experiment tag the same UI
reads when that flag is off and writes from its "experiment type" selector; the trainer sets it too
(:data:`EXPERIMENT_KIND_TAGS`) so an experiment says what it is for any UI or client that reads the tag.

No MLflow import here: the local stack's CLI uses these links as well.
"""

from __future__ import annotations

from urllib.parse import quote

#: The UI's workflow type for model training (the "Machine learning" mode: runs, models, charts).
WORKFLOW_TYPE = "machine_learning"
_MODE = f"?workflowType={WORKFLOW_TYPE}"

#: The experiment tag MLflow's UI reads and writes for an experiment's type; the value of a training experiment.
EXPERIMENT_KIND_TAG = "mlflow.experimentKind"
EXPERIMENT_KIND_TAGS = {EXPERIMENT_KIND_TAG: "custom_model_development"}


def _base(tracking_uri: str) -> str:
    return tracking_uri.rstrip("/")


def runs_url(tracking_uri: str, experiment_id: str) -> str:
    """The experiment's runs table ("Model training"): the search's parent runs, trials nested under them."""
    return f"{_base(tracking_uri)}/#/experiments/{experiment_id}/runs{_MODE}"


def run_url(tracking_uri: str, experiment_id: str, run_id: str) -> str:
    """One run's page (parameters, metrics; its artifacts, where the search's plots live, are a tab on it)."""
    return f"{_base(tracking_uri)}/#/experiments/{experiment_id}/runs/{run_id}{_MODE}"


def model_url(tracking_uri: str, model_name: str) -> str:
    """The registered model's page: its versions and their aliases (``champion``, ``challenger``)."""
    return f"{_base(tracking_uri)}/#/models/{quote(model_name, safe='')}"


def model_version_url(tracking_uri: str, model_name: str, version: str | int) -> str:
    """One model version's page (its source run, its aliases)."""
    return f"{model_url(tracking_uri, model_name)}/versions/{version}"
