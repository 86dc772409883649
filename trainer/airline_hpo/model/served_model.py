"""The registered model as users call it: a small MLflow pyfunc around the fitted scikit-learn forest.

Logged "from code" (MLflow's models-from-code): this file is copied into the model and run when the model loads,
so it imports nothing from ``airline_hpo`` and the model loads wherever MLflow, scikit-learn and skops are
installed (``mlflow models serve``, a notebook, a batch job).

Why not the plain sklearn flavor: its signature would declare float32 columns, which MLflow's pyfunc refuses to
take from an ordinary float64 or int64 DataFrame (only the REST server casts), and it answers labels only. Here
the signature declares its number columns by name with MLflow's ``Any`` type (MLflow refuses to cast int64 to
double, so ``double`` would reject int64 frames; text is ``string``, naive timestamps ``datetime``), the model
checks they are numbers and casts them to the float32 the forest was fitted on; and the signature has a
parameter ``output``:

- ``label`` (default): 1 = late, 0 = on time, as before;
- ``probability``: the probability of a late arrival;
- ``both``: a table with columns ``label`` and ``probability``.

A second parameter ``orient`` shapes the table of ``both``: ``records`` (the default, a DataFrame, which MLflow's
scoring server answers as one JSON object per row) or ``columns`` (a dict of two arrays, which it answers as
``{"label": [...], "probability": [...]}``: the same numbers, written about four times faster, because MLflow
writes a DataFrame row by row through its pure-Python JSON encoder). A model logged before ``orient`` existed
ignores it (MLflow drops parameters its signature does not name) and answers records.

In MLflow's scoring server the model, once loaded, freezes the process's start-up objects out of the garbage
collector's scans (:func:`freeze_long_lived_objects`: a full collection otherwise costs a 10,000-row request
about 36 ms on average); a plain ``load_model`` leaves the collector alone.

A model of a spec's table with text or datetime columns takes them raw (strings, timestamps) and encodes them
as training did (``table_encoding``, logged beside this file).

Python: ``model.predict(df, params={"output": "both"})``; REST: ``{"dataframe_split": ..., "params":
{"output": "both", "orient": "columns"}}``. The label is ``probability >= threshold``, the decision threshold the
search chose on its validation part (model config ``threshold``; ``airline_hpo.model.threshold``). A model logged
before the threshold was chosen has none in its config and answers ``probability > 0.5``, as it always did.
"""

from __future__ import annotations

import gc
import os
from typing import Any

import mlflow
import numpy as np
import pandas as pd

OUTPUTS = ("label", "probability", "both")
ORIENTS = ("records", "columns")

#: skops loads only the types it is told to trust; a forest's trees are ``sklearn.tree._tree.Tree``.
TRUSTED_TYPES = ["sklearn.tree._tree.Tree"]


class LateArrivalModel(mlflow.pyfunc.PythonModel):
    """Label and/or probability of a late arrival; the model is the artifact ``forest`` (a scikit-learn forest,
    skops format) or ``xgboost`` (XGBoost's own JSON model format, predicting on the CPU)."""

    def load_context(self, context: Any) -> None:
        if "xgboost" in context.artifacts:
            from xgboost import XGBClassifier

            self.forest = XGBClassifier(device="cpu")
            self.forest.load_model(context.artifacts["xgboost"])
        else:
            import skops.io

            self.forest = skops.io.load(context.artifacts["forest"], trusted=TRUSTED_TYPES)
        self.columns = list(context.model_config["columns"])
        #: A spec's table with text or datetime columns: encoded here as in training (``table_encoding``, logged
        #: beside this file); None for tables of numbers.
        self.encoding = context.model_config.get("encoding")
        self.features = list(context.model_config.get("forest_columns") or self.columns)
        #: None for a model logged before thresholds were chosen: it keeps its ``> 0.5``.
        self.threshold = context.model_config.get("threshold")
        if in_scoring_server():
            freeze_long_lived_objects()

    def predict(self, context: Any, model_input: pd.DataFrame, params: dict[str, Any] | None = None) -> Any:
        output = (params or {}).get("output", "label")
        if output not in OUTPUTS:
            raise ValueError(f"unknown output {output!r}; use one of {', '.join(OUTPUTS)}")
        orient = (params or {}).get("orient", "records")
        if orient not in ORIENTS:
            raise ValueError(f"unknown orient {orient!r}; use one of {', '.join(ORIENTS)}")
        x = pd.DataFrame(model_input)[self.columns]
        if self.encoding is not None:
            import table_encoding

            x = table_encoding.apply(x, self.encoding)[self.features]
        non_numeric = [c for c in x.columns if not pd.api.types.is_numeric_dtype(x[c])]
        if non_numeric:
            raise ValueError(f"column(s) {', '.join(non_numeric)} are not numeric; send numbers (codes encoded)")
        x = x.astype(np.float32)  # what the forest was fitted on
        probability = np.asarray(self.forest.predict_proba(x)[:, 1], dtype=np.float64)
        if self.threshold is None:
            label = (probability > 0.5).astype(np.int64)
        else:
            label = (probability >= float(self.threshold)).astype(np.int64)
        if output == "label":
            return label
        if output == "probability":
            return probability
        if orient == "columns":
            return {"label": label, "probability": probability}
        return pd.DataFrame({"label": label, "probability": probability})


def in_scoring_server() -> bool:
    """True in MLflow's scoring server (``mlflow models serve``, or its app under uvicorn as ``make serve`` runs
    it): MLflow names the model its app loads in this variable of the server's process, never elsewhere."""
    from mlflow.pyfunc import scoring_server

    return bool(os.environ.get(scoring_server._SERVER_MODEL_PATH))


def freeze_long_lived_objects() -> None:
    """Collect what is garbage now, then move every object still alive (the forest, and MLflow, pandas,
    scikit-learn and the rest imported to run it: some 350,000 objects) out of the garbage collector's scans.

    Why: MLflow's handling of a 10,000-row request (its JSON parsed into lists, each value checked, frames
    built) allocates enough to set off a full collection about every tenth request, and a full collection
    scans every tracked object: about 360 ms each time here, 36 ms a request on average, more than all the
    request's JSON work. Frozen objects are skipped (about 0.3 ms a request); they are still freed as soon as
    nothing refers to them, only a reference cycle among them waits for the process to end, which is why this
    happens only in a scoring server, whose start-up objects outlive every request (:func:`gc.freeze`'s
    documented use). An in-process ``predict`` allocates too little to set off full collections."""
    gc.collect()
    gc.freeze()


mlflow.models.set_model(LateArrivalModel())
