"""``mlflow gc`` for the local stack: permanently remove runs deleted longer ago than an age, with their artifacts.

Deleting a run in MLflow only marks it; its rows and its objects in the bucket stay until ``mlflow gc``. The
runs' artifact URIs are ``mlflow-artifacts:/...`` (the server's proxy), so gc deletes the objects through the
running server (``--tracking-uri``), which holds the S3 keys; ``--artifacts-destination`` names the same bucket
prefix the server writes to.
"""

from __future__ import annotations

import re

from local_stack import object_store, postgres, tracking_server
from local_stack.backup import require_running
from local_stack.errors import StackError
from local_stack.mlflow_cli import BACKEND_URI, run_mlflow
from local_stack.stack import LocalStack

DEFAULT_OLDER_THAN = "30d"
# MLflow's own format (#d#h#m#s, decimals allowed); a bare number is taken as days.
_NUMBER = r"\d+(?:\.\d+)?"
_AGE = re.compile(rf"^(?:(?P<d>{_NUMBER})d)?(?:(?P<h>{_NUMBER})h)?(?:(?P<m>{_NUMBER})m)?(?:(?P<s>{_NUMBER})s)?$")
_SECONDS = {"d": 86400, "h": 3600, "m": 60, "s": 1}
#: Beyond this MLflow's own arithmetic overflows (it subtracts the age from now in milliseconds).
MAX_AGE_DAYS = 36500


def normalize_age(older_than: str) -> str:
    """``older_than`` in MLflow's ``#d#h#m#s`` form; ``0`` (collect every deleted run) becomes ``0d``."""
    age = older_than.strip()
    if re.fullmatch(_NUMBER, age):
        age = f"{age}d"
    match = _AGE.fullmatch(age)
    if not age or match is None or not any(match.groupdict().values()):
        raise StackError(
            f"--older-than {older_than!r} is not an age; write it like 30d, 12h, 1d2h30m or 0 (every deleted run)"
        )
    seconds = sum(float(value) * _SECONDS[unit] for unit, value in match.groupdict().items() if value)
    if seconds > MAX_AGE_DAYS * 86400:
        raise StackError(f"--older-than {older_than!r} is over {MAX_AGE_DAYS} days; write an age like 30d or 12h")
    return age


def collect(stack: LocalStack, older_than: str = DEFAULT_OLDER_THAN) -> list[str]:
    """Remove runs deleted more than ``older_than`` ago (rows and artifacts); return the ids of removed runs."""
    age = normalize_age(older_than)
    require_running(stack, postgres.SERVICE, object_store.SERVICE, tracking_server.SERVICE)
    settings = stack.settings
    creds = stack.credentials
    # gc deletes the artifacts through the running server, which asks for the login like any client.
    env = {**tracking_server.server_env(settings, creds), **tracking_server.client_credentials(creds)}
    result = run_mlflow(
        [
            "gc",
            "--backend-store-uri",
            BACKEND_URI,
            "--artifacts-destination",
            f"s3://{settings.bucket}/{settings.artifact_prefix}",
            "--tracking-uri",
            settings.tracking_uri,
            "--older-than",
            age,
        ],
        env,
    )
    return re.findall(r"Run with ID (\w+) has been permanently deleted", result.stdout)
