"""The hyperparameter search and its executors (entry point ``hyperopt``: ``python -m airline_hpo.search``).

- ``driver``        the search: config, space, budgets, parent run, refit, test score, promotion; the CLI.
- ``trials``        one trial: a nested run fitted on train, scored on validation, journaled.
- ``refit``         the best configuration refitted on train+validation and scored once on test.
- ``resume``        ``resume_run_id``: rebuild an interrupted search's finished trials from MLflow.
- ``ray_executor``  ``executor=ray``: the same search on Ray Tune (parallel trials, object-store data, retries).

The driver imports the executors, never the other way round.
"""
