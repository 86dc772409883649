"""Airline delay hyperparameter search: the trainer that the rapids-mlflow-stack platform exists to run.

Subpackages, one concern each, imported only downward (``errors`` <- ``data`` <- ``model`` <- ``lifecycle`` <-
``search`` <- the entry points):

- ``errors``     one-line, user-fixable errors and the CLI wrapper that prints them instead of tracebacks.
- ``ui_links``   the MLflow UI links every entry point prints (bottom layer, no imports, like ``errors``).
- ``data``       the table: storage, loading and checks, splits, the demo's data (``prepare``).
- ``model``      engines (scikit-learn / cuML), the served pyfunc, registry, promotion, plots.
- ``lifecycle``  pre-check, outage budget, trial journal, signal handling: a run ends in a known state.
- ``search``     the hyperopt search, its trials, refit and resume, and the Ray Tune executor.
- ``cluster``    the bridge from ``pulumi stack output`` to ``mlflow run --backend kubernetes``.
- ``train``, ``serve_check``, ``demo``  entry points: one configuration, the served champion, ``make demo``.

Entry points run with ``trainer/`` as the working directory (that is what ``mlflow run`` does), so this package
imports as ``airline_hpo``; the tests put ``trainer/`` on ``sys.path`` for the same reason. The benchmarks live in
the repository's ``benchmarks/``, outside the package that ships in the training image.
"""

import os as _os

# MLflow 3.17's telemetry thread races the client (``KeyError: '_MLFLOW_TELEMETRY_SESSION_ID'``, about 1 call in
# 3,200 under load) and sends usage data out: off for every entry point, before any module imports mlflow.
_os.environ.setdefault("MLFLOW_DISABLE_TELEMETRY", "true")
