"""Names of everything the stack creates, computed in one place.

Every object name the stack creates is derived here from the configured prefix, because other parts depend
on knowing a name before the object exists: the job template references Secrets and the ServiceAccount by
name, `--allowed-hosts` lists the tracking Service's DNS name, and the database URI embeds the PostgreSQL
Service's name. Computing names (instead of reading them back from provider outputs) keeps those links plain
strings that tests and the `mlflow run` bridge can read without a deployed stack.
"""

from __future__ import annotations

from dataclasses import dataclass

# Component resource type tokens share one package/module prefix so `pulumi stack` groups them.
TYPE_PREFIX = "rapids-mlflow:platform"


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
    def training_auth_secret(self) -> str:
        """The training Jobs' own (non-admin) MLflow credentials."""
        return self._n("training-auth")

    @property
    def postgres_network_policy(self) -> str:
        return self._n("postgres-ingress")

    def service_fqdn(self, service: str) -> str:
        """The in-cluster DNS name pods use to reach `service` in this namespace."""
        return f"{service}.{self.namespace}.svc.cluster.local"
