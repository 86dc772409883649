"""The rapids-mlflow-stack Pulumi program's building blocks, one subpackage a concern.

- ``core``      the typed config and the pieces every part shares (names, labels, quantities, pod security).
- ``aws``       the artifact bucket, its policy and the least-privilege identity, the image repository.
- ``tracking``  PostgreSQL, the cluster Secrets, the MLflow tracking server and its migration Job.
- ``training``  what training Jobs need: the submitter's Role, the Job template.
- ``gpu``       the NVIDIA device plugin.
- ``kuberay``   Ray on KubeRay: the operator and the RayCluster.
- ``network``   the NetworkPolicies.
- ``day_two``   backups, ``mlflow gc``, metrics.
- ``policies``  the CrossGuard policies (``infra/policy_pack`` and the tests run the same ones).

Imports run downward only: ``core`` imports none of the others, ``aws`` only ``core``, and so on up to
``day_two``. Kept import-light on purpose: the policy pack imports ``mlflow_platform.policies`` without pulling in
the cloud provider SDKs, so nothing here imports the component modules eagerly.
"""
