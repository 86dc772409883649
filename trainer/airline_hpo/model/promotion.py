"""Who gets the ``champion`` alias: a model that answers the same question better, beyond noise.

``promote=if_better`` (default) gives the new version ``champion`` only when all of these hold, else
``challenger`` with the reason:

1. every feature it reads is known at decision time (a model trained with ``features=all`` reads post-landing
   columns such as ``ActualElapsedTime`` and is never champion, whatever ``promote`` says);
2. it is *comparable* with the current champion: the same target, the same features and the same test rows
   (a digest of those rows and their labels), read from the tags ``question.*`` of the champion's run. A champion
   without them (registered before they were logged) is not comparable either;
3. on those test rows its objective (``log_loss`` by default) beats the champion's by more than ``margin``
   (default 0) at the lower end of a 95% paired bootstrap interval (:mod:`airline_hpo.model.evidence`): one
   test score cannot rank models 0.01 apart (design notes §3c), so a strict ``>`` would promote noise.

With no champion yet the new version (if eligible) becomes champion. ``promote=always`` moves the alias
without rules 2-3 (but never to a model that fails rule 1); ``never`` gives ``challenger``. The champion is
loaded by its alias and scored through pyfunc, as a user would call it; one that cannot be scored keeps its
alias under ``if_better``.

Logged on the active run: params ``promote``, ``promote_margin``, ``objective``; tags ``promotion.alias``,
``promotion.reason``, ``promotion.champion_version`` and the model's own ``question.*``; metrics
``champion_test_<objective>`` (and accuracy/ROC AUC), ``promotion_improvement`` with ``_low``/``_high``. The
entry points print the decision as one line.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from typing import Any

import mlflow
import numpy as np
import pandas as pd

from airline_hpo.data.splits import Split
from airline_hpo.errors import TrainerError
from airline_hpo.model import evidence, objectives, registry

PROMOTE_CHOICES = ("if_better", "always", "never")
DEFAULT_MARGIN = 0.0
#: Below this an improvement is floating-point noise (the same forest summed in another order), not a gain.
NEGLIGIBLE = 1e-9


@dataclass(frozen=True)
class Score:
    """A model's scores on one set of rows (every objective, whichever one the search uses)."""

    accuracy: float
    roc_auc: float | None
    log_loss: float | None = None
    pr_auc: float | None = None
    #: objective -> its 95% bootstrap interval on these rows (only where asked for: the test score)
    intervals: dict[str, tuple[float, float]] = field(default_factory=dict)

    def value(self, objective: str) -> float | None:
        return getattr(self, objective)

    def metrics(self, prefix: str) -> dict[str, float]:
        """``<prefix><objective>`` for each score, and ``<prefix><objective>_low``/``_high`` for its interval."""
        names = ("accuracy", "roc_auc", "log_loss", "pr_auc")
        out = {f"{prefix}{n}": getattr(self, n) for n in names if getattr(self, n) is not None}
        for name, (low, high) in self.intervals.items():
            out[f"{prefix}{name}_low"], out[f"{prefix}{name}_high"] = low, high
        return out


def score(late_probability: np.ndarray, y: np.ndarray, with_intervals: bool = False) -> Score:
    """Every objective of the probabilities ``late_probability`` on rows labelled ``y``; ``with_intervals``
    adds each one's bootstrap interval (:func:`airline_hpo.model.evidence.interval`), for the test score."""
    p = np.asarray(late_probability, dtype=np.float64)
    values = {name: objectives.get(name)(y, p) for name in objectives.OBJECTIVES}
    intervals = (
        {name: evidence.interval(objectives.get(name), y, p) for name in objectives.OBJECTIVES}
        if with_intervals
        else {}
    )
    return Score(**values, intervals=intervals)


@dataclass(frozen=True)
class Question:
    """What a model answers and on which rows it was tested: two models are comparable only when these match."""

    target: str
    features: tuple[str, ...]
    #: sha256 of the test rows (every column the data has) and their labels, first 16 hex digits
    test_rows: str
    #: The split in words (kind, sizes, seed), for the reason a user reads
    split: str
    #: Features read that are known only after the event (empty for a model that may be champion)
    unknown_at_decision: tuple[str, ...] = ()

    TAG = "question."

    @classmethod
    def of(cls, target: str, split: Split, rows: pd.DataFrame, description: str) -> Question:
        digest = hashlib.sha256(pd.util.hash_pandas_object(rows, index=False).to_numpy().tobytes())
        digest.update(np.asarray(split.y_test, dtype=np.int64).tobytes())
        return cls(target, tuple(split.features), digest.hexdigest()[:16], description, split.unknown_at_decision)

    def tags(self) -> dict[str, str]:
        return {
            f"{self.TAG}target": self.target,
            f"{self.TAG}features": ",".join(self.features),
            f"{self.TAG}test_rows": self.test_rows,
            f"{self.TAG}split": self.split,
            f"{self.TAG}unknown_at_decision": ",".join(self.unknown_at_decision) or "-",
        }

    @classmethod
    def from_tags(cls, tags: dict[str, str]) -> Question | None:
        keys = ("target", "features", "test_rows", "split")
        if not all(f"{cls.TAG}{k}" in tags for k in keys):
            return None
        unknown = tags.get(f"{cls.TAG}unknown_at_decision", "-")
        return cls(
            tags[f"{cls.TAG}target"],
            tuple(tags[f"{cls.TAG}features"].split(",")),
            tags[f"{cls.TAG}test_rows"],
            tags[f"{cls.TAG}split"],
            () if unknown == "-" else tuple(unknown.split(",")),
        )

    def differences(self, theirs: Question | None) -> str:
        """Why a model that answers ``theirs`` is not comparable with this one ("" when it is)."""
        if theirs is None:
            return "it records no target, features or test rows (registered before promotion compared them)"
        differ = []
        if theirs.target != self.target:
            differ.append(f"target {theirs.target} vs {self.target}")
        if theirs.features != self.features:
            only_theirs = sorted(set(theirs.features) - set(self.features))
            only_ours = sorted(set(self.features) - set(theirs.features))
            detail = "; ".join(
                part
                for part in (
                    f"only it reads {','.join(only_theirs)}" if only_theirs else "",
                    f"only the new one reads {','.join(only_ours)}" if only_ours else "",
                )
                if part
            )
            differ.append(f"other features ({detail or 'same columns, other order'})")
        if theirs.test_rows != self.test_rows:
            differ.append(f"other test rows ({theirs.split} vs {self.split})")
        return ", ".join(differ)


@dataclass(frozen=True)
class Decision:
    alias: str
    reason: str
    new: Score
    champion: Score | None = None
    champion_version: str | None = None
    comparison: evidence.Comparison | None = None

    @property
    def promoted(self) -> bool:
        return self.alias == registry.CHAMPION_ALIAS


def check_mode(mode: str) -> str:
    if mode not in PROMOTE_CHOICES:
        raise TrainerError(f"unknown promote {mode!r}", f"use one of {', '.join(PROMOTE_CHOICES)}")
    return mode


def check_margin(margin: float) -> float:
    if not margin >= 0.0:
        raise TrainerError(f"promote_margin must be 0 or positive (got {margin})", "pass e.g. promote_margin=0.002")
    return margin


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


def model_probabilities(model_uri: str, rows: pd.DataFrame) -> np.ndarray:
    """A registered model's late probabilities through pyfunc, as a user would ask for them (its download
    removed afterwards: :func:`airline_hpo.model.registry.loaded_model`)."""
    with registry.loaded_model(model_uri, "champion") as model:
        frame = _inputs_for(model, rows)
        params = model.metadata.get_params_schema()
        if params is None or "output" not in {p.name for p in params.params}:
            raise ValueError("it answers labels only, no probabilities")
        return np.asarray(model.predict(frame, params={"output": "probability"}), dtype=np.float64).ravel()


def current_champion(model_name: str) -> str | None:
    """The version the champion alias points to, or None when there is none (or the model is not registered)."""
    from mlflow.exceptions import MlflowException

    try:
        return mlflow.MlflowClient().get_model_version_by_alias(model_name, registry.CHAMPION_ALIAS).version
    except MlflowException:
        return None


def champion_question(model_name: str, version: str) -> Question | None:
    """The question the champion's run recorded (None when it recorded none, or the run is gone)."""
    client = mlflow.MlflowClient()
    try:
        return Question.from_tags(client.get_run(client.get_model_version(model_name, version).run_id).data.tags)
    except Exception:  # a run deleted since: nothing to compare with
        return None


def _by_mode(mode: str, problem: str, new: Score, version: str, **extra: Any) -> Decision:
    """``if_better`` keeps the champion when a rule fails; ``always`` moves it anyway; ``never`` never does."""
    if mode == "if_better":
        return Decision(registry.CHALLENGER_ALIAS, f"{problem}; promote=always moves it", new, None, version, **extra)
    alias = registry.CHAMPION_ALIAS if mode == "always" else registry.CHALLENGER_ALIAS
    return Decision(alias, f"promote={mode}; {problem}", new, None, version, **extra)


def decide(
    mode: str,
    model_name: str,
    question: Question,
    p_new: np.ndarray,
    rows: pd.DataFrame,
    y: np.ndarray,
    objective: str = objectives.DEFAULT,
    margin: float = DEFAULT_MARGIN,
) -> Decision:
    """Which alias the new version gets. ``p_new``: its late probabilities on the test rows ``rows`` (every
    column) labelled ``y``. Call before the new version is registered, while ``champion`` names the old one."""
    new = score(p_new, y)
    if question.unknown_at_decision:
        unknown = ", ".join(question.unknown_at_decision)
        reason = f"never champion: it reads {unknown}, not known at decision time (train without them)"
        return Decision(registry.CHALLENGER_ALIAS, reason, new)
    champion = current_champion(model_name)
    if champion is None:
        alias = registry.CHALLENGER_ALIAS if mode == "never" else registry.CHAMPION_ALIAS
        return Decision(alias, "promote=never" if mode == "never" else "no champion yet", new)
    differ = question.differences(champion_question(model_name, champion))
    if differ:
        return _by_mode(mode, f"not comparable with champion version {champion}: {differ}", new, champion)
    try:
        p_old = model_probabilities(f"models:/{model_name}@{registry.CHAMPION_ALIAS}", rows)
    except Exception as exc:  # the champion is someone else's model: any failure to score it is a reason, not a crash
        first = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        return _by_mode(mode, f"champion version {champion} could not be scored on these rows ({first})", new, champion)
    comparison = evidence.paired_bootstrap(objectives.get(objective), y, p_new, p_old)
    better = comparison.clears(margin)
    verdict = "clears" if better else "does not clear"
    text = f"{comparison.describe()}: its lower bound {verdict} the margin {margin:g}".replace(
        "champion's", f"champion version {champion}'s"
    )
    if not better and comparison.improvement > margin + NEGLIGIBLE:
        text += " (better, but within the noise)"
    old = score(p_old, y)
    if mode == "if_better":
        alias = registry.CHAMPION_ALIAS if better else registry.CHALLENGER_ALIAS
        return Decision(alias, text, new, old, champion, comparison)
    alias = registry.CHAMPION_ALIAS if mode == "always" else registry.CHALLENGER_ALIAS
    return Decision(alias, f"promote={mode}; {text}", new, old, champion, comparison)


def log_decision(decision: Decision, mode: str, margin: float, objective: str) -> None:
    """On the active run: the rule's settings, the alias given, the reason, both scores and the interval."""
    registry.log_params_once({"promote": mode, "promote_margin": margin, "objective": objective})
    tags = {"promotion.alias": decision.alias, "promotion.reason": decision.reason}
    if decision.champion_version:
        tags["promotion.champion_version"] = decision.champion_version
    mlflow.set_tags(tags)
    metrics = decision.champion.metrics("champion_test_") if decision.champion is not None else {}
    if decision.comparison is not None:
        c = decision.comparison
        metrics.update(
            {
                "promotion_improvement": c.improvement,
                "promotion_improvement_low": c.low,
                "promotion_improvement_high": c.high,
            }
        )
    if metrics:
        mlflow.log_metrics(metrics)


def register_and_promote(
    mode: str,
    model_name: str,
    sk_model: Any,
    x_test: pd.DataFrame,
    rows: pd.DataFrame,
    y: np.ndarray,
    question: Question,
    objective: str = objectives.DEFAULT,
    margin: float = DEFAULT_MARGIN,
    encoding: dict[str, Any] | None = None,
    threshold: float | None = None,
) -> tuple[Decision | None, registry.RegisteredModel | None]:
    """Log the model in the active run with its question's tags; when ``model_name`` names one, decide (before
    registering, while ``champion`` still names the old version), register, point the decided alias at the new
    version and log the decision. ``x_test``: the test rows as the model was fitted (encoded features);
    ``rows``/``y``: the same rows as a caller sends them (every raw column) and their labels; ``encoding``: how
    raw columns become features, when they differ (:mod:`airline_hpo.data.table_encoding`); ``threshold``: the
    served label's decision threshold (:mod:`airline_hpo.model.threshold`)."""
    mlflow.set_tags(question.tags())
    features = list(x_test.columns)
    if encoding is None:
        example = x_test.head(5)
    else:
        from airline_hpo.data import table_encoding

        example = rows[table_encoding.sources(features, encoding)].head(5)
    if model_name in registry.NO_MODEL_NAMES:
        registry.log_model(sk_model, example, model_name, encoding, features, threshold)
        return None, None
    p_new = np.asarray(sk_model.predict_proba(x_test.astype(np.float32))[:, 1])
    decision = decide(mode, model_name, question, p_new, rows, y, objective, margin)
    logged = registry.log_model(sk_model, example, model_name, encoding, features, threshold)
    registered = registry.set_alias(model_name, decision.alias, logged.version)
    log_decision(decision, mode, margin, objective)
    return decision, registered


def summary_line(decision: Decision | None, registered: registry.RegisteredModel | None) -> str:
    if decision is None or registered is None:
        return "promotion: nothing registered (model_name=none)"
    return f"promotion: {registered.name} version {registered.version} -> {decision.alias} ({decision.reason})"
