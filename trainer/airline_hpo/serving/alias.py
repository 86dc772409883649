"""Which model version an alias names, and when a served version must give way to it.

MLflow's scoring server resolves ``models:/<name>@<alias>`` once, at start: a moved alias (the trainer's
promotion, the UI, ``MlflowClient.set_registered_model_alias``) reaches it only through a restart. Whatever
restarts it (the local endpoint's supervisor, the cluster's CronJob) asks the registry with :func:`alias_version`
and decides with :func:`version_to_serve`, so both follow the alias by the same rule.
"""

from __future__ import annotations

from collections.abc import Collection


def alias_version(model_name: str, alias: str, client: object | None = None) -> str | None:
    """The version ``model_name@alias`` names now, or None when the alias (or the model) does not exist.

    Any other failure (server unreachable, permission denied) raises: "no alias" and "cannot tell" differ, and
    only the first may leave an endpoint without a model.
    """
    from mlflow import MlflowClient
    from mlflow.exceptions import MlflowException

    client = client or MlflowClient()
    try:
        return str(client.get_model_version_by_alias(model_name, alias).version)
    except MlflowException as exc:
        if exc.error_code in ("RESOURCE_DOES_NOT_EXIST", "INVALID_PARAMETER_VALUE"):
            return None
        raise


def version_to_serve(served: str | None, current: str | None, failed: Collection[str] = ()) -> str | None:
    """The version to start now, or None to keep what runs.

    - no alias any more (``current`` None): keep serving; an endpoint that answers beats one that does not;
    - the alias names the served version: nothing to do;
    - it names a version that already failed to load: keep the old one (it is tried again once the alias moves).
    """
    if current is None or current == served or current in failed:
        return None
    return current
