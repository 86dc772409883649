"""The rapids-mlflow-stack Pulumi program's building blocks, one module a concern.

Kept import-light on purpose: the policy pack imports `mlflow_platform.policies` without pulling in the
cloud provider SDKs, so nothing here imports the component modules eagerly.
"""
