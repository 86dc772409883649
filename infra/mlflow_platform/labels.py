"""Names and Kubernetes recommended labels, computed in one place.

Every object name the stack creates is derived here from the configured prefix, because other parts depend
on knowing a name before the object exists: the job template references Secrets and the ServiceAccount by
name, `--allowed-hosts` lists the tracking Service's DNS name, and the database URI embeds the PostgreSQL
Service's name. Computing names (instead of reading them back from provider outputs) keeps those links plain
strings that tests and the `mlflow run` bridge can read without a deployed stack.
"""

from __future__ import annotations

from dataclasses import dataclass

PART_OF = "rapids-mlflow-stack"
MANAGED_BY = "pulumi"
# Component resource type tokens share one package/module prefix so `pulumi stack` groups them.
TYPE_PREFIX = "rapids-mlflow:platform"

LABEL_NAME = "app.kubernetes.io/name"
LABEL_INSTANCE = "app.kubernetes.io/instance"
LABEL_COMPONENT = "app.kubernetes.io/component"
LABEL_PART_OF = "app.kubernetes.io/part-of"
LABEL_MANAGED_BY = "app.kubernetes.io/managed-by"
LABEL_VERSION = "app.kubernetes.io/version"
RECOMMENDED_LABELS = (LABEL_NAME, LABEL_INSTANCE, LABEL_COMPONENT, LABEL_PART_OF, LABEL_MANAGED_BY)


@dataclass(frozen=True)
class Names:
    """Every name the stack gives a Kubernetes object, derived from one prefix and namespace."""

    prefix: str
    namespace: str

    def _n(self, suffix: str) -> str:
        return f"{self.prefix}-{suffix}"

    @property
    def tracking(self) -> str:
        return self._n("tracking")

    @property
    def tracking_service_account(self) -> str:
        return self._n("tracking")

    @property
    def postgres(self) -> str:
        return self._n("postgres")

    @property
    def training_service_account(self) -> str:
        return self._n("training")

    @property
    def training_role(self) -> str:
        return self._n("training-jobs")

    @property
    def s3_secret(self) -> str:
        return self._n("s3-credentials")

    @property
    def db_secret(self) -> str:
        return self._n("db-credentials")

    @property
    def auth_secret(self) -> str:
        return self._n("tracking-auth")

    @property
    def postgres_network_policy(self) -> str:
        return self._n("postgres-ingress")

    def service_fqdn(self, service: str) -> str:
        """The in-cluster DNS name pods use to reach `service` in this namespace."""
        return f"{service}.{self.namespace}.svc.cluster.local"


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


def aws_tags(prefix: str, stack: str, component: str) -> dict[str, str]:
    """AWS tags mirroring the Kubernetes labels, so a bucket or IAM user is traceable to its stack."""
    return {"app": PART_OF, "instance": prefix, "stack": stack, "component": component, "managed-by": MANAGED_BY}
