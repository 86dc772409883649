"""Who gets the ``champion`` alias: the new model only when it beats the current champion on the same test rows.

``promote=if_better`` (default): the current champion is loaded by its alias, scored on exactly the rows the new
model was tested on (the columns it declares, cast to its own input types), and the alias moves only when the new
model's test accuracy is higher; otherwise the new version gets ``challenger``. With no champion yet the new
version becomes champion. A champion that cannot be scored on these rows (it needs a column the data lacks, or
does not load) keeps its alias: moving it anyway is what ``promote=always`` is for. ``always`` and ``never``
decide without the comparison (champion, challenger), but the champion is still scored and both scores logged.

The decision, the reason and both scores are logged on the active run (tags ``promotion.*``, metrics
``champion_test_accuracy``/``champion_test_roc_auc``) and printed as one line by the entry point.

Caveat: a champion trained under another split (other seed, data, sizes) may have trained on some of these rows;
its score is then optimistic and the new model has to beat that. The reason says so when the champion's run
params (:data:`SPLIT_PARAMS`) differ. Compare models trained with the same split settings.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import mlflow
import numpy as np
import pandas as pd
from sklearn.metrics import accuracy_score, roc_auc_score

from airline_hpo.errors import TrainerError
from airline_hpo.model import registry

PROMOTE_CHOICES = ("if_better", "always", "never")


@dataclass(frozen=True)
class Score:
    accuracy: float
    roc_auc: float | None


@dataclass(frozen=True)
class Decision:
    alias: str
    reason: str
    new: Score
    champion: Score | None = None
    champion_version: str | None = None

    @property
    def promoted(self) -> bool:
        return self.alias == registry.CHAMPION_ALIAS


def check_mode(mode: str) -> str:
    if mode not in PROMOTE_CHOICES:
        raise TrainerError(f"unknown promote {mode!r}", f"use one of {', '.join(PROMOTE_CHOICES)}")
    return mode


def score(late_probability: np.ndarray, y: np.ndarray) -> Score:
    """Accuracy of ``probability > 0.5`` (what the search scores) and ROC AUC."""
    predicted = (np.asarray(late_probability) > 0.5).astype(np.int32)
    return Score(float(accuracy_score(y, predicted)), float(roc_auc_score(y, late_probability)))


def _inputs_for(model: mlflow.pyfunc.PyFuncModel, rows: pd.DataFrame) -> pd.DataFrame:
    """The columns the model declares, cast to the types it declares (an older champion wants float32)."""
    from mlflow.types import DataType

    schema = model.metadata.get_input_schema()
    if schema is None:
        return rows
    names = schema.input_names()
    missing = [n for n in names if n not in rows.columns]
    if missing:
        raise ValueError(f"it needs column(s) {', '.join(missing)}")
    frame = rows[names].copy()
    for spec in schema.inputs:
        if isinstance(spec.type, DataType):
            frame[spec.name] = frame[spec.name].astype(spec.type.to_numpy())
    return frame


def score_model(model_uri: str, rows: pd.DataFrame, y: np.ndarray) -> Score:
    """Score a registered model through pyfunc, as a user would call it. A model with the ``output`` parameter
    gives probabilities (accuracy and ROC AUC); an older one answers labels only (accuracy)."""
    model = mlflow.pyfunc.load_model(model_uri)
    frame = _inputs_for(model, rows)
    params = model.metadata.get_params_schema()
    if params is not None and "output" in {p.name for p in params.params}:
        return score(np.asarray(model.predict(frame, params={"output": "probability"}), dtype=np.float64), y)
    labels = np.asarray(model.predict(frame)).astype(np.int32).ravel()
    return Score(float(accuracy_score(y, labels)), None)


def current_champion(model_name: str) -> str | None:
    """The version the champion alias points to, or None when there is none (or the model is not registered)."""
    from mlflow.exceptions import MlflowException

    try:
        return mlflow.MlflowClient().get_model_version_by_alias(model_name, registry.CHAMPION_ALIAS).version
    except MlflowException:
        return None


#: Run params that fix which rows are test rows: a champion trained under other values may have trained on them.
SPLIT_PARAMS = ("fpath", "max_rows", "split", "seed", "test_size", "val_size")


def split_mismatch(champion_run_id: str, split_params: dict[str, str]) -> str:
    """Which split settings of the champion's run differ from ours ("" when none do, or when unknown)."""
    try:
        theirs = mlflow.MlflowClient().get_run(champion_run_id).data.params
    except Exception:  # a run deleted since: nothing to compare
        return ""
    differ = [f"{k} {theirs[k]} vs {v}" for k, v in split_params.items() if k in theirs and not _same(theirs[k], v)]
    return ", ".join(differ)


def _same(logged: str, value: object) -> bool:
    """Params come back as typed by whoever logged them (``.2`` under ``mlflow run``, ``0.2`` from us)."""
    try:
        return float(logged) == float(value)  # type: ignore[arg-type]
    except (TypeError, ValueError):
        return logged == str(value)


def decide(
    mode: str,
    model_name: str,
    new: Score,
    rows: pd.DataFrame,
    y: np.ndarray,
    split_params: dict[str, str] | None = None,
) -> Decision:
    """Which alias the new version gets; ``rows``/``y`` are the test rows (all columns) the new model was scored
    on, ``split_params`` the settings that chose them. Call before the new version is registered, so that
    ``champion`` still names the old one."""
    champion = current_champion(model_name)
    if champion is None:
        alias = registry.CHALLENGER_ALIAS if mode == "never" else registry.CHAMPION_ALIAS
        return Decision(alias, "promote=never" if mode == "never" else "no champion yet", new)
    try:
        old = score_model(f"models:/{model_name}@{registry.CHAMPION_ALIAS}", rows, y)
    except Exception as exc:  # the champion is someone else's model: any failure to score it is a reason, not a crash
        first = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        problem = f"champion version {champion} could not be scored on these rows ({first})"
        if mode == "if_better":
            return Decision(registry.CHALLENGER_ALIAS, f"{problem}; promote=always moves it", new, None, champion)
        alias = registry.CHAMPION_ALIAS if mode == "always" else registry.CHALLENGER_ALIAS
        return Decision(alias, f"promote={mode}; {problem}", new, None, champion)
    caveat = ""
    if split_params:
        run_id = mlflow.MlflowClient().get_model_version(model_name, champion).run_id
        differ = split_mismatch(run_id, split_params)
        if differ:
            caveat = f"; the champion was trained under another split ({differ}): it may have seen these rows"
    better = new.accuracy > old.accuracy
    comparison = (
        f"test accuracy {new.accuracy:.4f} {'>' if better else '<='} champion version {champion}'s "
        f"{old.accuracy:.4f} on the same {len(y):,} rows{caveat}"
    )
    if mode == "if_better":
        alias = registry.CHAMPION_ALIAS if better else registry.CHALLENGER_ALIAS
        return Decision(alias, comparison, new, old, champion)
    alias = registry.CHAMPION_ALIAS if mode == "always" else registry.CHALLENGER_ALIAS
    return Decision(alias, f"promote={mode}; {comparison}", new, old, champion)


def log_decision(decision: Decision, mode: str) -> None:
    """On the active run: the mode, the alias given, the reason, and the champion's score on the same rows."""
    registry.log_params_once({"promote": mode})
    tags = {"promotion.alias": decision.alias, "promotion.reason": decision.reason}
    if decision.champion_version:
        tags["promotion.champion_version"] = decision.champion_version
    mlflow.set_tags(tags)
    if decision.champion is not None:
        metrics = {"champion_test_accuracy": decision.champion.accuracy}
        if decision.champion.roc_auc is not None:
            metrics["champion_test_roc_auc"] = decision.champion.roc_auc
        mlflow.log_metrics(metrics)


def register_and_promote(
    mode: str,
    model_name: str,
    sk_model: Any,
    example: pd.DataFrame,
    new: Score,
    rows: pd.DataFrame,
    y: np.ndarray,
    split_params: dict[str, str] | None = None,
) -> tuple[Decision | None, registry.RegisteredModel | None]:
    """Log the model in the active run; when ``model_name`` names one, decide (before registering, while
    ``champion`` still names the old version), register, point the decided alias at the new version and log the
    decision. ``rows``/``y``: the test rows, all columns, on which ``new`` was scored."""
    if model_name in registry.NO_MODEL_NAMES:
        registry.log_model(sk_model, example, model_name)
        return None, None
    decision = decide(mode, model_name, new, rows, y, split_params)
    logged = registry.log_model(sk_model, example, model_name)
    registered = registry.set_alias(model_name, decision.alias, logged.version)
    log_decision(decision, mode)
    return decision, registered


def summary_line(decision: Decision | None, registered: registry.RegisteredModel | None) -> str:
    if decision is None or registered is None:
        return "promotion: nothing registered (model_name=none)"
    return f"promotion: {registered.name} version {registered.version} -> {decision.alias} ({decision.reason})"
