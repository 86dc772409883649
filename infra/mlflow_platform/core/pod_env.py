"""Environment variables of the pods that reach S3 or the database, built the same way for every workload.

Secrets enter a container only as `secretKeyRef`s (never literal values), and S3 credentials only when the
stack uses an IAM user's key: with IRSA or EKS Pod Identity the ServiceAccount brings them, so the same pod
spec works on both kinds of cluster.
"""

from __future__ import annotations

import pulumi_kubernetes as k8s

from mlflow_platform.core.config import StackConfig
from mlflow_platform.core.naming import Names


def plain_env(var: str, value: object) -> k8s.core.v1.EnvVarArgs:
    return k8s.core.v1.EnvVarArgs(name=var, value=value)  # type: ignore[arg-type]


def secret_env(var: str, secret: str, key: str | None = None) -> k8s.core.v1.EnvVarArgs:
    """`var` from key `key` (default: the same name) of Secret `secret`."""
    return k8s.core.v1.EnvVarArgs(
        name=var,
        value_from=k8s.core.v1.EnvVarSourceArgs(
            secret_key_ref=k8s.core.v1.SecretKeySelectorArgs(name=secret, key=key or var)
        ),
    )


def admin_env(names: Names) -> list[k8s.core.v1.EnvVarArgs]:
    """The MLflow admin's pair (basic auth) under the names MLflow's client reads."""
    return [
        secret_env("MLFLOW_TRACKING_USERNAME", names.auth_secret, "MLFLOW_AUTH_ADMIN_USERNAME"),
        secret_env("MLFLOW_TRACKING_PASSWORD", names.auth_secret, "MLFLOW_AUTH_ADMIN_PASSWORD"),
    ]


def s3_env(cfg: StackConfig, names: Names) -> list[k8s.core.v1.EnvVarArgs]:
    """What boto3 needs to reach the bucket, exactly as the tracking server gets it."""
    env = [plain_env("AWS_DEFAULT_REGION", cfg.aws_region)]
    if cfg.uses_access_key:
        env += [
            secret_env("AWS_ACCESS_KEY_ID", names.s3_secret),
            secret_env("AWS_SECRET_ACCESS_KEY", names.s3_secret),
        ]
    return env
