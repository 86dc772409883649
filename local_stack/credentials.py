"""Credentials of one local stack, generated on first use and kept in a 0600 file under its state directory.

A fixed key pair in the code would be a credential in git; a fresh random one per stack is not, and the file
mode keeps it private to the user who started the stack.
"""

from __future__ import annotations

import json
import os
import secrets
import string
from dataclasses import asdict, dataclass, fields
from pathlib import Path

_KEY_ALPHABET = string.ascii_uppercase + string.digits


@dataclass(frozen=True)
class StackCredentials:
    """What each service needs: PostgreSQL's superuser and MLflow role passwords, the S3 key pair, and for
    ``up --auth`` the MLflow admin password and the auth app's Flask secret key."""

    postgres_superuser_password: str
    mlflow_db_password: str
    s3_access_key: str
    s3_secret_key: str
    mlflow_admin_password: str
    flask_secret_key: str

    @classmethod
    def generate(cls) -> StackCredentials:
        return cls(
            postgres_superuser_password=secrets.token_urlsafe(24),
            mlflow_db_password=secrets.token_urlsafe(24),
            # Same shape as AWS keys (20 upper-case characters, 40-character secret), but a "LS" prefix so that
            # no secret scanner mistakes them for real AWS keys.
            s3_access_key="LS" + "".join(secrets.choice(_KEY_ALPHABET) for _ in range(18)),
            s3_secret_key=secrets.token_urlsafe(30),
            # MLflow refuses admin passwords under 12 characters.
            mlflow_admin_password=secrets.token_urlsafe(18),
            flask_secret_key=secrets.token_urlsafe(32),
        )


def load_or_create(path: Path) -> StackCredentials:
    """Return the stack's credentials, creating the 0600 file on first use; reuse keeps existing data readable.

    A file from an older version lacks the newer keys: they are generated and the file is rewritten (0600),
    keeping every existing value.
    """
    fresh = StackCredentials.generate()
    if path.exists():
        saved = json.loads(path.read_text())
        missing = {f.name: getattr(fresh, f.name) for f in fields(StackCredentials) if f.name not in saved}
        creds = StackCredentials(**{**saved, **missing})
        if missing:
            _write_private(path, creds, replace=True)
        return creds
    path.parent.mkdir(parents=True, exist_ok=True)
    _write_private(path, fresh, replace=False)
    return fresh


def _write_private(path: Path, creds: StackCredentials, replace: bool) -> None:
    """Write the file with mode 0600 from the first byte (a replacement goes through a 0600 temporary file)."""
    target = path.with_suffix(".tmp") if replace else path
    if replace:
        target.unlink(missing_ok=True)
    fd = os.open(target, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w") as handle:
        json.dump(asdict(creds), handle, indent=2)
    if replace:
        os.replace(target, path)
