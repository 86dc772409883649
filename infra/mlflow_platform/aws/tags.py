"""AWS tags that mirror the Kubernetes labels, so a bucket, IAM identity or repository is traceable to its stack."""

from __future__ import annotations

from mlflow_platform.core.labels import MANAGED_BY, PART_OF


def aws_tags(prefix: str, stack: str, component: str) -> dict[str, str]:
    """AWS tags mirroring the Kubernetes labels, so a bucket or IAM user is traceable to its stack."""
    return {"app": PART_OF, "instance": prefix, "stack": stack, "component": component, "managed-by": MANAGED_BY}
