"""Credentials of one local stack, generated on first use and kept in a 0600 file under its state directory.

A fixed key pair in the code would be a credential in git; a fresh random one per stack is not, and the file
mode keeps it private to the user who started the stack.
"""

from __future__ import annotations

import json
import os
import secrets
import string
from collections.abc import Iterable
from dataclasses import asdict, dataclass, fields
from pathlib import Path

from local_stack.errors import StackError

_KEY_ALPHABET = string.ascii_uppercase + string.digits


@dataclass(frozen=True)
class StackCredentials:
    """What each service needs: PostgreSQL's superuser and MLflow role passwords, the S3 key pair, and for
    MLflow's login the admin password and the auth app's Flask secret key."""

    postgres_superuser_password: str
    mlflow_db_password: str
    s3_access_key: str
    s3_secret_key: str
    mlflow_admin_password: str
    flask_secret_key: str
    #: SeaweedFS's JWT signing keys: without them its volume and filer ports would serve anyone who can connect
    #: (reads, writes and deletes of every artifact, bypassing the S3 keys).
    seaweedfs_volume_write_key: str
    seaweedfs_volume_read_key: str
    seaweedfs_filer_write_key: str
    seaweedfs_filer_read_key: str

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
            seaweedfs_volume_write_key=secrets.token_urlsafe(32),
            seaweedfs_volume_read_key=secrets.token_urlsafe(32),
            seaweedfs_filer_write_key=secrets.token_urlsafe(32),
            seaweedfs_filer_read_key=secrets.token_urlsafe(32),
        )


def load_or_create(path: Path, data_dirs: Iterable[Path] = (), write: bool = True) -> StackCredentials:
    """Return the stack's credentials, creating the 0600 file on first use; reuse keeps existing data readable.

    A file from an older version lacks the newer keys: they are generated and the file is rewritten (0600),
    keeping every existing value. A missing file while ``data_dirs`` hold data from an earlier ``up`` is an
    error, not a fresh start: new keys would lock the user out of the database and the store. With
    ``write=False`` (``status``, ``env``) nothing is written: generated values are only returned.
    """
    if path.exists():
        saved = _read(path)
        fresh = StackCredentials.generate()
        missing = {f.name: getattr(fresh, f.name) for f in fields(StackCredentials) if f.name not in saved}
        creds = StackCredentials(**{**saved, **missing})
        if missing and write:
            _write_private(path, creds, replace=True)
        return creds
    existing = [str(d) for d in data_dirs if d.exists()]
    if existing:
        raise StackError(
            f"{path} is missing, but {' and '.join(existing)} hold data written with the keys it held: put the file "
            f"back from your copy; only if that data may go, `python -m local_stack down --wipe` deletes it all"
        )
    fresh = StackCredentials.generate()
    if write:
        path.parent.mkdir(parents=True, exist_ok=True)
        _write_private(path, fresh, replace=False)
    return fresh


def _read(path: Path) -> dict[str, str]:
    """The saved values, checked; a damaged file is one line naming it (its keys open the data: never replace it)."""
    fix = (
        "restore it from your copy (its keys open the stack's data); only if that data may go, "
        "`python -m local_stack down --wipe` deletes it all"
    )
    try:
        saved = json.loads(path.read_text())
    except (OSError, UnicodeDecodeError, ValueError) as exc:
        reason = exc.strerror if isinstance(exc, OSError) else "not valid JSON"
        raise StackError(f"{path} cannot be read ({reason}); {fix}") from None
    if not isinstance(saved, dict):
        raise StackError(f"{path} is not a JSON object; {fix}")
    known = {f.name for f in fields(StackCredentials)}
    unknown = sorted(set(saved) - known)
    if unknown:
        raise StackError(f"{path} has unknown keys {', '.join(unknown)}; {fix}")
    wrong = sorted(name for name, value in saved.items() if not isinstance(value, str) or not value)
    if wrong:
        raise StackError(f"{path}: {', '.join(wrong)} must be non-empty strings; {fix}")
    essential = ("postgres_superuser_password", "mlflow_db_password", "s3_access_key", "s3_secret_key")
    lost = [name for name in essential if name not in saved]
    if lost:
        raise StackError(f"{path} lacks {', '.join(lost)}; {fix}")
    return saved


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
