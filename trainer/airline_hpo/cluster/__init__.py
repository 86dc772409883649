"""From the cloud stack to ``mlflow run``: the bridge that turns ``pulumi stack output`` into backend config.

- ``bridge``  ``python -m airline_hpo.cluster.bridge``: backend config, Job template and ``export`` lines.
"""
