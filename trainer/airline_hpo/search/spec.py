"""The search spec: one YAML file that says what a search is about, so a team brings its own table with no code.

::

    data:
      uri: s3://bucket/flights.parquet   # or a local path
      target: ArrDelay > 15              # a 0/1 column, or a column with a threshold
      time_column: time_hour             # optional; one datetime/number column, or [year, month, day]
      exclude: [arr_time, air_time]      # columns not known at decision time
    split: time                          # optional: time (default with a time column), date, random
    gap: 1                               # optional: days left out before validation and test (time split)
    model:
      family: random_forest              # random_forest | xgboost
      space: {n_estimators: [10, 300]}   # optional; each family has a default for every dimension
    objective: log_loss                  # log_loss (default) | roc_auc | pr_auc | accuracy
    threshold: {rule: f1}                # optional: f1 (default) | {rule: cost, false_positive: 1, false_negative: 5}

Every problem is one line naming the key and the fix. The spec's text is logged on the parent run
(``spec/search.yaml``) with its hash as the tag ``spec.sha256`` (of the parsed content, so comments and layout
do not count); resuming a search with a different spec is refused. The common parameters (``max_evals``,
``engine``, ``executor``, budgets, ``fpath`` for ``data.uri``) are command-line options and override the spec.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from airline_hpo.data import storage
from airline_hpo.data.table import TableSpec, Target
from airline_hpo.errors import TrainerError
from airline_hpo.model import objectives
from airline_hpo.model import threshold as threshold_mod
from airline_hpo.model.engines import FAMILIES

#: Where ``spec=specs/airline.yaml`` is found when the working directory is not the project (tests, notebooks).
PROJECT_DIR = Path(__file__).resolve().parents[2]
DEFAULT_SPEC = "specs/airline.yaml"
#: The value of a command-line option that leaves the decision to the spec.
FROM_SPEC = "spec"

SPLITS = ("time", "date", "random")

#: Each family's dimensions and their defaults: [low, high] (integers where the defaults are), or the choices.
DEFAULT_SPACES: dict[str, dict[str, list[Any]]] = {
    "random_forest": {
        "n_estimators": [10, 300],
        "max_depth": [3, 20],
        "min_samples_leaf": [1, 20],
        "max_features": [0.2, 1.0],
        "max_samples": [0.5, 1.0],
        "criterion": ["gini", "entropy"],
    },
    "xgboost": {
        "n_estimators": [50, 500],
        "max_depth": [2, 10],
        "learning_rate": [0.02, 0.3],
        "subsample": [0.5, 1.0],
        "colsample_bytree": [0.5, 1.0],
        "min_child_weight": [1, 20],
    },
}
CHOICE_DIMENSIONS = ("criterion",)
#: Shares of rows or columns: at most 1.
FRACTION_DIMENSIONS = ("max_features", "max_samples", "subsample", "colsample_bytree")

_KEYS = {"data", "split", "gap", "model", "objective", "threshold"}
_DATA_KEYS = {"uri", "target", "time_column", "exclude"}
_MODEL_KEYS = {"family", "space"}


@dataclass(frozen=True)
class SearchSpec:
    table: TableSpec
    family: str
    space: dict[str, list[Any]] = field(hash=False)
    objective: str
    split: str
    where: str = ""
    #: Days left out before validation and before test (time split only)
    gap: int = 0
    #: How the served model's label threshold is chosen on the validation part (:mod:`airline_hpo.model.threshold`)
    threshold: threshold_mod.ThresholdRule = field(default_factory=threshold_mod.ThresholdRule)

    @property
    def content(self) -> dict[str, Any]:
        """The spec with every default filled in: what the hash covers."""
        content: dict[str, Any] = {
            "data": {
                "uri": self.table.uri,
                "target": str(self.table.target),
                "time_column": list(self.table.time_columns),
                "exclude": list(self.table.exclude),
            },
            "split": self.split,
            "gap": self.gap,
            "model": {"family": self.family, "space": self.space},
            "objective": self.objective,
        }
        if self.threshold != threshold_mod.ThresholdRule():  # absent = default: earlier specs keep their hash
            content["threshold"] = self.threshold.content
        return content

    @property
    def sha256(self) -> str:
        return hashlib.sha256(json.dumps(self.content, sort_keys=True).encode()).hexdigest()


def _fail(where: str, key: str, problem: str, fix: str) -> TrainerError:
    return TrainerError(f"spec {where}: {key} {problem}", fix)


def _names(value: Any, where: str, key: str) -> tuple[str, ...]:
    """A column name or a list of them."""
    if value is None:
        return ()
    items = value if isinstance(value, list) else [value]
    if not all(isinstance(v, str) and v.strip() for v in items):
        raise _fail(where, key, f"must be a column name or a list of them (got {value!r})", f"e.g. {key}: [a, b]")
    return tuple(v.strip() for v in items)


def _mapping(value: Any, where: str, key: str, allowed: set[str]) -> dict[str, Any]:
    if not isinstance(value, dict):
        raise _fail(where, key, f"must be a mapping (got {type(value).__name__})", f"write {key}: with keys below it")
    unknown = sorted(set(value) - allowed)
    if unknown:
        raise _fail(where, f"{key}.{unknown[0]}" if key else unknown[0], "is not a known key",
                    f"use {', '.join(sorted(allowed))}")  # fmt: skip
    return value


def _space(family: str, given: Any, where: str) -> dict[str, list[Any]]:
    defaults = DEFAULT_SPACES[family]
    if given is None:
        return {k: list(v) for k, v in defaults.items()}
    given = _mapping(given, where, "model.space", set(defaults))
    space = {k: list(v) for k, v in defaults.items()}
    for name, value in given.items():
        key = f"model.space.{name}"
        if name in CHOICE_DIMENSIONS:
            if not isinstance(value, list) or not value or not all(isinstance(v, str) for v in value):
                raise _fail(where, key, f"must be a list of choices (got {value!r})", f"e.g. {name}: {defaults[name]}")
            space[name] = value
            continue
        if not (isinstance(value, list) and len(value) == 2 and all(isinstance(v, (int, float)) for v in value)):
            raise _fail(where, key, f"must be [low, high] (got {value!r})", f"e.g. {name}: {defaults[name]}")
        low, high = value
        integer = all(isinstance(v, int) for v in defaults[name])
        if integer and not all(float(v).is_integer() for v in value):
            raise _fail(where, key, f"takes whole numbers (got {value})", f"e.g. {name}: {defaults[name]}")
        if not low <= high or low <= 0:
            raise _fail(where, key, f"must have 0 < low <= high (got {value})", f"e.g. {name}: {defaults[name]}")
        if name in FRACTION_DIMENSIONS and high > 1:
            raise _fail(where, key, f"is a share, at most 1 (got {value})", f"e.g. {name}: {defaults[name]}")
        space[name] = [int(low), int(high)] if integer else [float(low), float(high)]
    return space


def parse(document: Any, where: str) -> SearchSpec:
    """Validate a parsed YAML document; every problem is one line naming the key and the fix."""
    if not isinstance(document, dict):
        raise _fail(where, "the file", "is not a YAML mapping", "start from trainer/specs/airline.yaml")
    _mapping(document, where, "", _KEYS)
    if "data" not in document:
        raise _fail(where, "data", "is missing", "add data: with uri and target (see trainer/specs/airline.yaml)")
    data = _mapping(document["data"], where, "data", _DATA_KEYS)
    for key in ("uri", "target"):
        if not isinstance(data.get(key), (str, int, float)) or not str(data.get(key)).strip():
            example = "s3://bucket/table.parquet" if key == "uri" else "ArrDelay > 15"
            raise _fail(where, f"data.{key}", "is missing or empty", f"e.g. {key}: {example}")
    try:
        target = Target.parse(str(data["target"]))
    except TrainerError as exc:
        raise _fail(where, "data.target", exc.problem.removeprefix("data.target "), exc.fix) from exc
    time_columns = _names(data.get("time_column"), where, "data.time_column")
    exclude = _names(data.get("exclude"), where, "data.exclude")
    if target.column in exclude:
        raise _fail(where, "data.exclude", f"lists the target column {target.column}", "leave it out of exclude")
    table = TableSpec(str(data["uri"]).strip(), target, time_columns, exclude)

    split = document.get("split") or ("time" if time_columns else "random")
    if split not in SPLITS:
        raise _fail(where, "split", f"is {split!r}", f"use one of {', '.join(SPLITS)}")
    if split != "random" and not time_columns:
        raise _fail(where, "split", f"{split} needs data.time_column", "add data.time_column, or split: random")
    gap = document.get("gap", 0)
    if not isinstance(gap, int) or isinstance(gap, bool) or gap < 0:
        raise _fail(where, "gap", f"must be a whole number of days, 0 or more (got {gap!r})", "e.g. gap: 1")
    if gap and split != "time":
        raise _fail(where, "gap", f"applies to split: time only (split is {split})", "remove gap, or split: time")
    model = _mapping(document.get("model") or {}, where, "model", _MODEL_KEYS)
    family = model.get("family", "random_forest")
    if family not in FAMILIES:
        raise _fail(where, "model.family", f"is {family!r}", f"use one of {', '.join(FAMILIES)}")
    objective = document.get("objective", objectives.DEFAULT)
    if objective not in objectives.OBJECTIVES:
        raise _fail(where, "objective", f"is {objective!r}", f"use one of {', '.join(objectives.OBJECTIVES)}")
    space = _space(family, model.get("space"), where)
    threshold = threshold_mod.parse(
        document.get("threshold"), lambda key, problem, fix: _fail(where, key, problem, fix)
    )
    return SearchSpec(table, family, space, objective, split, where, gap, threshold)


def resolve(location: str) -> str:
    """A path as given (relative to the working directory, which ``mlflow run`` sets to the project), else
    relative to the project; ``s3://`` URIs as they are."""
    if storage.is_s3(location) or Path(location).exists():
        return location
    in_project = PROJECT_DIR / location
    return str(in_project) if in_project.exists() else location


def read_text(location: str) -> str:
    where = resolve(location)
    if not storage.is_s3(where) and not Path(where).is_file():
        raise TrainerError(
            f"spec {location} is not a file (here or in {PROJECT_DIR})",
            f"pass spec=<a YAML file in the project or an s3:// URI> (the default is {DEFAULT_SPEC})",
        )
    try:
        return storage.read_bytes(where).decode()
    except (OSError, UnicodeDecodeError) as exc:
        raise TrainerError(
            f"spec {location} cannot be read ({type(exc).__name__})",
            f"pass spec=<a YAML file in the project or an s3:// URI> (the default is {DEFAULT_SPEC})",
        ) from exc


def load(location: str) -> tuple[SearchSpec, str]:
    """The validated spec at ``location`` and its text (to log as it was written)."""
    import yaml

    text = read_text(location)
    try:
        document = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        at = f" at line {mark.line + 1}" if mark is not None else ""
        raise TrainerError(f"spec {location} is not valid YAML{at}", "fix the YAML (indentation, colons)") from exc
    return parse(document, location), text
