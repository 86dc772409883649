"""Kubernetes Secrets: S3 credentials, database credentials, and the tracking server's auth settings.

(Named `cluster_secrets` so it does not shadow the standard library's `secrets` module.)

Everything secret reaches the cluster only through these Secrets, and every value is wrapped in
`pulumi.Output.secret` so it is encrypted in the Pulumi state and masked in previews. Pods reference the
Secrets by name (`secretKeyRef`, `secretName`), which is why the names are fixed by `naming.Names`.
"""

from __future__ import annotations

import configparser
import hashlib
import io
import json

import pulumi
import pulumi_kubernetes as k8s
import pulumi_random as random

from mlflow_platform.aws.artifact_store import ArtifactStore
from mlflow_platform.core.config import ConfigError, StackConfig
from mlflow_platform.core.labels import labels
from mlflow_platform.core.naming import TYPE_PREFIX, Names
from mlflow_platform.tracking.database import DB_NAME, DB_USER, POSTGRES_PORT
from mlflow_platform.tracking.serving_user import AUTH_SERVING_USER

AUTH_ADMIN_USER = "admin"
# The non-admin MLflow user the training Jobs log as (see `training_user`).
AUTH_TRAINING_USER = "training"
AUTH_CONFIG_FILE = "basic_auth.ini"
_ACCEPTED_SCHEMES = ("postgresql+psycopg2://", "postgresql://", "postgresql+psycopg://")


def check_external_uri(uri: str) -> str:
    """Reject a backend URI that is not PostgreSQL, without ever echoing the (secret) value."""
    if not uri.startswith(_ACCEPTED_SCHEMES):
        raise ConfigError("postgresExternalUri", "must start with postgresql+psycopg2:// (value not shown)")
    return uri


#: How long MLflow's server may keep a successful login check (see :func:`auth_config_ini`).
AUTH_CACHE_SECONDS = 60


def auth_config_ini(database_uri: str) -> str:
    """MLflow's basic-auth config file, pointing its user store at the tracking database.

    The user tables live next to the tracking tables (they use their own `alembic_version_auth`), so the
    auth app survives pod restarts; the default `sqlite:///basic_auth.db` would be lost with the pod and
    cannot even be written on a read-only root filesystem. `%` is escaped for configparser interpolation.
    """
    parser = configparser.ConfigParser()
    parser["mlflow"] = {
        # A user sees and changes only what it created or was granted: the training user cannot read or
        # overwrite other people's experiments and models.
        "default_permission": "NO_PERMISSIONS",
        "database_uri": database_uri.replace("%", "%%"),
        "admin_username": AUTH_ADMIN_USER,
        "authorization_function": "mlflow.server.auth:authenticate_request_basic_auth",
        # MLflow checks the password's scrypt hash on every request (0.1-0.2 s of CPU each); its own cache keeps a
        # successful check per worker, keyed by an HMAC of the password (a wrong one is never cached). A rotated
        # password may still open a worker that cached the old one, for at most this long.
        "auth_cache_ttl_seconds": str(AUTH_CACHE_SECONDS),
    }
    buffer = io.StringIO()
    parser.write(buffer)
    return buffer.getvalue()


def data_checksum(data: dict[str, dict[str, str]]) -> str:
    """sha256 over Secrets' names, keys and values, in a stable order.

    Not secret itself: the values hashed are generated passwords and keys (high entropy), so the digest reveals
    nothing, and it must show in previews as the reason a pod template changed.
    """
    canonical = json.dumps({name: dict(sorted(d.items())) for name, d in sorted(data.items())}, sort_keys=True)
    return hashlib.sha256(canonical.encode()).hexdigest()


class ClusterSecrets(pulumi.ComponentResource):
    """The Secrets the tracking server, the database and the training Jobs read."""

    backend_store_uri: pulumi.Output[str]
    admin_password: pulumi.Output[str] | None

    def __init__(
        self,
        name: str,
        cfg: StackConfig,
        names: Names,
        namespace: pulumi.Input[str],
        store: ArtifactStore,
        opts: pulumi.ResourceOptions | None = None,
    ) -> None:
        super().__init__(f"{TYPE_PREFIX}:ClusterSecrets", name, None, opts)
        child = pulumi.ResourceOptions(parent=self)
        self._data: dict[str, dict[str, pulumi.Input[str]]] = {}

        def meta(secret_name: str, component: str) -> k8s.meta.v1.ObjectMetaArgs:
            return k8s.meta.v1.ObjectMetaArgs(
                name=secret_name, namespace=namespace, labels=labels(cfg.name_prefix, component)
            )

        def user_secret(role: str, secret_name: str, username: str, component: str) -> None:
            """A non-admin MLflow user's login in a Secret of its own, with a generated password."""
            password = random.RandomPassword(f"{name}-{role}-password", length=30, special=False, opts=child)
            self._data[secret_name] = {
                "MLFLOW_TRACKING_USERNAME": username,
                "MLFLOW_TRACKING_PASSWORD": pulumi.Output.secret(password.result),
            }
            k8s.core.v1.Secret(
                f"{name}-{role}-auth",
                metadata=meta(secret_name, component),
                type="Opaque",
                string_data=self._data[secret_name],
                opts=child,
            )

        if cfg.uses_access_key:
            assert store.access_key_id is not None and store.secret_access_key is not None
            self._data[names.s3_secret] = {
                "AWS_ACCESS_KEY_ID": pulumi.Output.secret(store.access_key_id),
                "AWS_SECRET_ACCESS_KEY": pulumi.Output.secret(store.secret_access_key),
            }
            k8s.core.v1.Secret(
                f"{name}-s3",
                metadata=meta(names.s3_secret, "artifact-store"),
                type="Opaque",
                string_data=self._data[names.s3_secret],
                opts=child,
            )

        db_data: dict[str, pulumi.Input[str]]
        if cfg.in_cluster_postgres:
            password = random.RandomPassword(f"{name}-db-password", length=32, special=False, opts=child)
            host = names.service_fqdn(names.postgres)
            self.backend_store_uri = pulumi.Output.secret(
                password.result.apply(
                    lambda pw: f"postgresql+psycopg2://{DB_USER}:{pw}@{host}:{POSTGRES_PORT}/{DB_NAME}"
                )
            )
            db_data = {
                "POSTGRES_USER": DB_USER,
                "POSTGRES_DB": DB_NAME,
                "POSTGRES_PASSWORD": pulumi.Output.secret(password.result),
                "MLFLOW_BACKEND_STORE_URI": self.backend_store_uri,
            }
        else:
            self.backend_store_uri = pulumi.Output.secret(
                pulumi.Output.from_input(cfg.postgres_external_uri).apply(check_external_uri)
            )
            db_data = {"MLFLOW_BACKEND_STORE_URI": self.backend_store_uri}
        self._data[names.db_secret] = db_data
        k8s.core.v1.Secret(
            f"{name}-db", metadata=meta(names.db_secret, "database"), type="Opaque", string_data=db_data, opts=child
        )

        self.admin_password = None
        if cfg.basic_auth:
            admin = random.RandomPassword(f"{name}-admin-password", length=24, special=False, opts=child)
            flask_key = random.RandomPassword(f"{name}-flask-secret-key", length=48, special=False, opts=child)
            self.admin_password = pulumi.Output.secret(admin.result)
            self._data[names.auth_secret] = {
                "MLFLOW_AUTH_ADMIN_USERNAME": AUTH_ADMIN_USER,
                "MLFLOW_AUTH_ADMIN_PASSWORD": self.admin_password,
                "MLFLOW_FLASK_SERVER_SECRET_KEY": pulumi.Output.secret(flask_key.result),
                AUTH_CONFIG_FILE: pulumi.Output.secret(self.backend_store_uri.apply(auth_config_ini)),
            }
            k8s.core.v1.Secret(
                f"{name}-auth",
                metadata=meta(names.auth_secret, "tracking-server"),
                type="Opaque",
                string_data=self._data[names.auth_secret],
                opts=child,
            )
            # The training Jobs' own user, in a Secret of its own: a Job never holds the admin's password.
            user_secret("training", names.training_auth_secret, AUTH_TRAINING_USER, "training-job")

            if cfg.serving:
                # The scoring endpoint's read-only user, in a Secret of its own (`serving_user`).
                user_secret("serving", names.serving_auth_secret, AUTH_SERVING_USER, "model-serving")

        self.register_outputs({"backend_store_uri": self.backend_store_uri, "admin_password": self.admin_password})

    def checksum(self, *secret_names: str) -> pulumi.Output[str]:
        """A digest of the named Secrets' data, for a `checksum/secrets` pod-template annotation.

        Kubernetes does not restart pods when a Secret they read as env changes, so a rotated key would leave
        running pods with the old (deleted) one. Annotating the pod template with this digest makes every change
        of the data a template change, and the workload rolls out. Names of Secrets this stack does not create
        (for example the S3 Secret under IRSA) are ignored. (PostgreSQL applies `POSTGRES_PASSWORD` only when it
        initialises an empty volume: the database container's postStart hook, `database.ADOPT_PASSWORD_SCRIPT`,
        sets the Secret's password on the running server at every start.)
        """
        present = {n: self._data[n] for n in secret_names if n in self._data}
        keyed = [(n, k, v) for n, d in present.items() for k, v in d.items()]
        digest = pulumi.Output.all(*[v for _, _, v in keyed]).apply(
            lambda values: data_checksum(
                {n: {k: str(v) for (m, k, _), v in zip(keyed, values, strict=True) if m == n} for n in present}
            )
        )
        return pulumi.Output.unsecret(digest)
