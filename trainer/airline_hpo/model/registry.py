"""MLflow plumbing shared by the entry points: reach the server, pick the experiment, log and register a model.

The MLflow client retries a dead server for minutes before it gives up; :func:`check_tracking_server` asks
``/health`` once with a short timeout so a wrong ``MLFLOW_TRACKING_URI`` is a one-line error before data is read.
"""

from __future__ import annotations

import contextlib
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import mlflow
import pandas as pd

from airline_hpo.errors import EXIT_FAILED, NO_MODEL, TrainerError
from airline_hpo.ui_links import EXPERIMENT_KIND_TAGS

CHAMPION_ALIAS = "champion"
CHALLENGER_ALIAS = "challenger"

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


def mark_training_experiment(experiment_id: str) -> None:
    """Tag the experiment as a model-training one (``mlflow.experimentKind``, the tag MLflow's UI reads and
    writes for an experiment's type; see :mod:`airline_hpo.ui_links`), once. A label, not a result: a user who
    may log runs but not edit the experiment (a shared experiment with EDIT on runs only) loses nothing, so a
    refusal is one printed line, never a failed run."""
    client = mlflow.MlflowClient()
    try:
        tags = client.get_experiment(experiment_id).tags
        for key, value in EXPERIMENT_KIND_TAGS.items():
            if key not in tags:  # a kind chosen in the UI stays
                client.set_experiment_tag(experiment_id, key, value)
    except mlflow.MlflowException as exc:
        print(f"note: experiment {experiment_id} not tagged as model training ({exc.error_code})")


def log_params_once(params: dict[str, Any]) -> None:
    """Log params the active run does not have yet: under ``mlflow run`` the entry point's own parameters are
    already logged (as typed by the user), and MLflow refuses to change a logged value."""
    run = mlflow.active_run()
    existing = mlflow.get_run(run.info.run_id).data.params if run else {}
    fresh = {k: v for k, v in params.items() if k not in existing}
    if fresh:
        mlflow.log_params(fresh)


#: Values of ``model_name`` that mean "log the model, register nothing" ("none" needs no shell quoting).
NO_MODEL_NAMES = ("", NO_MODEL)

#: The pyfunc model's code (MLflow's models-from-code): copied into every logged model.
SERVED_MODEL_CODE = Path(__file__).resolve().parent / "served_model.py"
#: The encoding of text and datetime columns, imported by the served model as ``table_encoding``.
TABLE_ENCODING_CODE = Path(__file__).resolve().parents[1] / "data" / "table_encoding.py"


@dataclass(frozen=True)
class RegisteredModel:
    name: str
    version: str
    alias: str
    model_uri: str


@dataclass(frozen=True)
class LoggedModel:
    model_uri: str
    #: The registered name and version; None when ``model_name`` asked for no registration.
    name: str | None
    version: str | None


def column_type(column: pd.Series) -> Any:
    """The MLflow type a column is declared with: ``string`` for text, ``datetime`` for timezone-naive
    timestamps (MLflow's own inference, :func:`mlflow.models.infer_signature`), ``Any`` for the rest.

    Numbers stay ``Any`` on purpose: MLflow's schema enforcement (``mlflow.models.utils._enforce_mlflow_datatype``)
    refuses int64 for a ``double`` column and float64 for a ``long`` one, and callers send both (the loader's
    float32 features, ``score``'s batches where a missing value made an integer column float64, int64 tables);
    the model checks and casts numbers itself. Timezone-aware timestamps stay ``Any`` too: MLflow refuses them
    for a ``datetime`` column."""
    from mlflow.models import infer_signature
    from mlflow.types.schema import AnyType

    text_dtype = column.dtype == object or isinstance(column.dtype, pd.StringDtype)  # not Categorical: refused
    is_text = text_dtype and column.dropna().map(lambda v: isinstance(v, str)).all()
    is_naive_time = pd.api.types.is_datetime64_dtype(column) and getattr(column.dt, "tz", None) is None
    if not (is_text or is_naive_time) or column.isna().all():
        return AnyType()
    return infer_signature(column.to_frame()).inputs.inputs[0].type


def model_signature(example: pd.DataFrame) -> Any:
    """Each feature a named column typed where MLflow's enforcement allows it (:func:`column_type`), and the
    ``output`` and ``orient`` parameters (label, probability or both; a table of both as records or as columns;
    see :mod:`airline_hpo.model.served_model`)."""
    from mlflow.models import ModelSignature
    from mlflow.types import ColSpec, ParamSchema, ParamSpec, Schema

    return ModelSignature(
        inputs=Schema([ColSpec(column_type(example[name]), name) for name in example.columns]),
        params=ParamSchema([ParamSpec("output", "string", "label"), ParamSpec("orient", "string", "records")]),
    )


def log_model(
    sk_model: Any,
    example: pd.DataFrame,
    model_name: str,
    encoding: dict[str, Any] | None = None,
    features: list[str] | None = None,
    threshold: float | None = None,
) -> LoggedModel:
    """Log ``sk_model`` once in the active run as the pyfunc users call, and register it when ``model_name``
    names a model (no alias: :mod:`airline_hpo.model.promotion` decides that). Failures are fatal (exit 1): a search
    whose best model did not reach the registry has not done its job.

    With ``encoding`` (a spec's table with text or datetime columns) ``example`` holds the raw columns a caller
    sends, ``features`` the encoded columns the forest was fitted on, and the encoding code travels with the
    model (``code_paths``), so serving encodes exactly as training did. ``threshold``: where the served
    ``label`` turns to 1 (``probability >= threshold``; None keeps ``> 0.5``)."""
    import mlflow.pyfunc
    import mlflow.sklearn
    from mlflow.exceptions import MlflowException

    register = model_name not in NO_MODEL_NAMES
    config: dict[str, Any] = {"columns": list(example.columns)}
    if encoding is not None:
        config.update({"encoding": encoding, "forest_columns": list(features or [])})
    if threshold is not None:
        config["threshold"] = float(threshold)
    if hasattr(example, "to_pandas"):  # cuDF rows (engine cuml keeps the table on the GPU): the model is CPU's
        example = example.to_pandas()
    try:
        with tempfile.TemporaryDirectory() as tmp:
            artifacts, requirements = _model_files(sk_model, Path(tmp))
            info = mlflow.pyfunc.log_model(
                name="model",
                python_model=str(SERVED_MODEL_CODE),
                artifacts=artifacts,
                model_config=config,
                code_paths=[str(TABLE_ENCODING_CODE)] if encoding is not None else None,
                signature=model_signature(example),
                input_example=example if encoding is not None else example.astype("float64"),
                registered_model_name=model_name if register else None,
                pip_requirements=[
                    *mlflow.sklearn.get_default_pip_requirements(include_skops=True),
                    *requirements,
                    f"mlflow=={mlflow.__version__}",
                ],
            )
    except MlflowException as exc:
        raise registry_error(model_name, exc) from exc
    if not register:
        return LoggedModel(info.model_uri, None, None)
    return LoggedModel(info.model_uri, model_name, str(info.registered_model_version))


def _model_files(model: Any, folder: Path) -> tuple[dict[str, str], list[str]]:
    """The fitted model as the served model's artifact, and what it needs installed beyond scikit-learn: a
    forest as ``forest`` (skops), an XGBoost model as ``xgboost`` (XGBoost's JSON format, which any XGBoost build
    of the same or a later version loads, CPU or CUDA) with the distribution that provides ``xgboost`` here
    (``xgboost-cpu`` in the venv, ``xgboost`` in the training image)."""
    import skops.io

    from airline_hpo.model.engines import is_xgboost

    if is_xgboost(model):
        import importlib.metadata

        import xgboost

        path = folder / "model.json"
        model.save_model(path)
        dist = (importlib.metadata.packages_distributions().get("xgboost") or ["xgboost"])[0]
        return {"xgboost": str(path)}, [f"{dist}=={xgboost.__version__}"]
    path = folder / "forest.skops"
    skops.io.dump(model, path)
    return {"forest": str(path)}, []


@contextlib.contextmanager
def loaded_model(model_uri: str, purpose: str = "model") -> Iterator[Any]:
    """``mlflow.pyfunc.load_model`` into a directory removed when the block ends (without ``dst_path`` MLflow
    downloads into a temporary directory it never removes). Predict inside the block: a model's code paths may
    be imported only when it first predicts."""
    import mlflow.pyfunc

    with tempfile.TemporaryDirectory(prefix=f"airline-{purpose}-") as scratch:
        yield mlflow.pyfunc.load_model(model_uri, dst_path=scratch)


def model_info(model_uri: str) -> Any:
    """``mlflow.models.get_model_info`` without its leftover: that is ``Model.load(model_uri)``, which downloads the
    MLmodel file into a temporary directory it never removes (one more in /tmp on every call). Here the
    directory is removed. A logged model's URI (``models:/m-<id>``) is resolved first, as ``Model.load`` does."""
    from mlflow.models import Model
    from mlflow.store.artifact.models_artifact_repo import ModelsArtifactRepository

    uri = model_uri.rstrip("/")
    if ModelsArtifactRepository._is_logged_model_uri(uri):
        uri = ModelsArtifactRepository.get_underlying_uri(uri)
    with tempfile.TemporaryDirectory(prefix="airline-mlmodel-") as scratch:
        local = mlflow.artifacts.download_artifacts(artifact_uri=f"{uri}/MLmodel", dst_path=scratch)
        return Model.load(local).get_model_info()


def registry_error(model_name: str, exc: Exception) -> TrainerError:
    message = getattr(exc, "message", str(exc)) or repr(exc)
    return TrainerError(
        f"logging or registering the model {model_name!r} failed: {message.splitlines()[0]}",
        "check the tracking server's log and the artifact store, then run the entry point again",
        exit_code=EXIT_FAILED,
    )


def set_alias(model_name: str, alias: str, version: str) -> RegisteredModel:
    from mlflow.exceptions import MlflowException

    try:
        mlflow.MlflowClient().set_registered_model_alias(model_name, alias, version)
    except MlflowException as exc:
        raise registry_error(model_name, exc) from exc
    return RegisteredModel(model_name, version, alias, f"models:/{model_name}@{alias}")


def log_and_register(
    sk_model: Any, example: pd.DataFrame, model_name: str, alias: str = CHAMPION_ALIAS
) -> RegisteredModel | None:
    """Log, register and point ``alias`` at the new version unconditionally (the benchmark's way; the entry
    points go through :mod:`airline_hpo.model.promotion`, which moves ``champion`` only for a better model)."""
    logged = log_model(sk_model, example, model_name)
    if logged.version is None:
        return None
    return set_alias(model_name, alias, logged.version)
