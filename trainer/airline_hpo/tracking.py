"""MLflow plumbing shared by the entry points: reach the server, pick the experiment, log and register a model.

The MLflow client retries a dead server for minutes before it gives up; :func:`check_tracking_server` asks
``/health`` once with a short timeout so a wrong ``MLFLOW_TRACKING_URI`` is a one-line error before data is read.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import mlflow
import pandas as pd

from airline_hpo.errors import EXIT_FAILED, TrainerError

CHAMPION_ALIAS = "champion"

#: skops refuses to load types it is not told to trust; a forest's trees are ``sklearn.tree._tree.Tree``.
SKOPS_TRUSTED_TYPES = ["sklearn.tree._tree.Tree"]


def check_tracking_server(uri: str | None = None, timeout: float = 5.0) -> str:
    """Raise a one-line error unless the tracking server answers; returns the URI that was checked.

    Non-HTTP URIs (a local ``file:`` or ``sqlite:`` store) need no server and pass.
    """
    import requests

    uri = uri or mlflow.get_tracking_uri()
    if not uri.startswith(("http://", "https://")):
        return uri
    fix = "start it (`make up`) or set MLFLOW_TRACKING_URI to a running MLflow server"
    try:
        response = requests.get(f"{uri.rstrip('/')}/health", timeout=timeout)
    except requests.RequestException as exc:
        reason = type(exc).__name__
        raise TrainerError(f"cannot reach the MLflow tracking server at {uri} ({reason})", fix) from exc
    if response.status_code != 200:
        raise TrainerError(f"the MLflow tracking server at {uri} answered HTTP {response.status_code}", fix)
    return uri


def log_params_once(params: dict[str, Any]) -> None:
    """Log params the active run does not have yet: under ``mlflow run`` the entry point's own parameters are
    already logged (as typed by the user), and MLflow refuses to change a logged value."""
    run = mlflow.active_run()
    existing = mlflow.get_run(run.info.run_id).data.params if run else {}
    fresh = {k: v for k, v in params.items() if k not in existing}
    if fresh:
        mlflow.log_params(fresh)


@dataclass(frozen=True)
class RegisteredModel:
    name: str
    version: str
    alias: str
    model_uri: str


def log_and_register(
    sk_model: Any, example: pd.DataFrame, model_name: str, alias: str = CHAMPION_ALIAS
) -> RegisteredModel | None:
    """Log ``sk_model`` once in the active run (signature and input example from ``example``) and, when
    ``model_name`` is given, register it and move ``alias`` to the new version. Failures are fatal (exit 1):
    a search whose best model did not reach the registry has not done its job."""
    import mlflow.sklearn
    from mlflow.exceptions import MlflowException
    from mlflow.models import infer_signature

    if hasattr(example, "to_pandas"):  # cuDF rows (engine cuml keeps the table on the GPU): the model is CPU's
        example = example.to_pandas()
    signature = infer_signature(example, sk_model.predict(example))
    try:
        info = mlflow.sklearn.log_model(
            sk_model,
            name="model",
            signature=signature,
            input_example=example,
            registered_model_name=model_name or None,
            skops_trusted_types=SKOPS_TRUSTED_TYPES,
            pip_requirements=[
                *mlflow.sklearn.get_default_pip_requirements(include_skops=True),
                f"mlflow=={mlflow.__version__}",
            ],
        )
        if not model_name:
            return None
        version = str(info.registered_model_version)
        mlflow.MlflowClient().set_registered_model_alias(model_name, alias, version)
    except MlflowException as exc:
        raise TrainerError(
            f"logging or registering the model {model_name!r} failed: {exc.message.splitlines()[0]}",
            "check the tracking server's log and the artifact store, then run the entry point again",
            exit_code=EXIT_FAILED,
        ) from exc
    return RegisteredModel(model_name, version, alias, f"models:/{model_name}@{alias}")
