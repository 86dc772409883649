"""A run's life around the work itself: checked before it starts, kept through outages, stopped cleanly.

- ``precheck``  before any run: model name, no silent local store, server, database, artifacts, journal dir.
- ``outage``    the retry budget for the tracking server and which part is down when it runs out.
- ``journal``   finished trials kept locally until MLflow has them; ``replay`` puts them back (idempotent).
- ``replay``    ``python -m airline_hpo.lifecycle.replay <parent>``: the journal's replay as a command.
- ``shutdown``  SIGTERM/SIGINT: stop after the running trial, mark runs KILLED, one line, exit in the grace period.

Nothing here imports the search, the data or the model: they sit above this package.
"""
