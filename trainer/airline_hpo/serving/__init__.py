"""Serving the registered model where its users are: online (a model server that follows an alias) and in batch.

- ``server``   ``mlflow models serve`` as a child process group: start, wait for ``/ping``, ask, stop.
- ``alias``    which version an alias names now and whether the served one must change: the one rule that the
               local endpoint (``make serve``) and the cluster's alias-follower CronJob both apply.
- ``score``    the ``score`` entry point: batch predictions for a parquet file, row group by row group.

It sits above ``model`` (it reads the registry) and below the entry points (``serve_check``, ``demo``).
"""
