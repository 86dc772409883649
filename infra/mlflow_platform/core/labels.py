"""Kubernetes recommended labels (`app.kubernetes.io/*`), computed in one place.

Selectors use an immutable subset, so a version bump never orphans pods. Object names live in `naming`,
AWS tags in `aws_tags`.
"""

from __future__ import annotations

PART_OF = "rapids-mlflow-stack"
MANAGED_BY = "pulumi"

LABEL_NAME = "app.kubernetes.io/name"
LABEL_INSTANCE = "app.kubernetes.io/instance"
LABEL_COMPONENT = "app.kubernetes.io/component"
LABEL_PART_OF = "app.kubernetes.io/part-of"
LABEL_MANAGED_BY = "app.kubernetes.io/managed-by"
LABEL_VERSION = "app.kubernetes.io/version"
RECOMMENDED_LABELS = (LABEL_NAME, LABEL_INSTANCE, LABEL_COMPONENT, LABEL_PART_OF, LABEL_MANAGED_BY)


def labels(instance: str, component: str, name: str = "mlflow", version: str | None = None) -> dict[str, str]:
    """The `app.kubernetes.io/*` labels for one component; `version` only where an image pins one."""
    result = {
        LABEL_NAME: name,
        LABEL_INSTANCE: instance,
        LABEL_COMPONENT: component,
        LABEL_PART_OF: PART_OF,
        LABEL_MANAGED_BY: MANAGED_BY,
    }
    if version:
        result[LABEL_VERSION] = version
    return result


def selector_labels(instance: str, component: str, name: str = "mlflow") -> dict[str, str]:
    """The immutable subset used in selectors: changing a version label must not orphan pods."""
    return {LABEL_NAME: name, LABEL_INSTANCE: instance, LABEL_COMPONENT: component}
