"""The deployment secret (spec §8): given, read from a file, or generated for SQLite.

The secret keys the refresh-token MAC and the encryption of the signing keys at rest; it
is never stored in the database. Earlier secrets stay accepted for tokens minted under
them.
"""

from __future__ import annotations

import logging
import os
import secrets
import stat
from pathlib import Path
from typing import TYPE_CHECKING

from ..exceptions import ConfigurationError

if TYPE_CHECKING:
    from .model import Settings

__all__ = ["load_deployment_secret"]

logger = logging.getLogger("keyfob")

_MIN_SECRET_BYTES = 32


def load_deployment_secret(settings: Settings) -> list[bytes]:
    """The deployment secrets, newest first (spec §8).

    From ``secret``, else ``secret_file``. For a SQLite store with neither, a secret is
    generated once into a ``0600`` file beside the database, with a warning. PostgreSQL
    requires an explicit secret: instances must share it, so generating one would be wrong.
    """
    current: bytes
    if settings.secret is not None:
        current = settings.secret.reveal().encode()
    elif settings.secret_file:
        current = _read_secret_file(Path(settings.secret_file))
    elif settings.store_url.startswith("sqlite:///"):
        current = _generated_secret_beside(Path(settings.store_url.removeprefix("sqlite:///")))
    elif settings.store_url.startswith("memory://"):
        current = secrets.token_urlsafe(48).encode()
    else:
        raise ConfigurationError(
            "KEYFOB_SECRET or KEYFOB_SECRET_FILE is required for this store: every instance "
            "must share the same deployment secret"
        )
    if len(current) < _MIN_SECRET_BYTES:
        raise ConfigurationError(
            f"the deployment secret must be at least {_MIN_SECRET_BYTES} bytes"
        )
    previous = [s.reveal().encode() for s in settings.previous_secrets]
    return [current, *previous]


def _read_secret_file(path: Path) -> bytes:
    try:
        data = path.read_bytes().strip()
    except OSError as exc:
        raise ConfigurationError(f"cannot read the secret file {path}: {exc.strerror}") from None
    if not data:
        raise ConfigurationError(f"the secret file {path} is empty")
    return data


def _generated_secret_beside(db_path: Path) -> bytes:
    path = db_path.with_name(db_path.name + ".secret")
    if path.exists():
        mode = stat.S_IMODE(path.stat().st_mode)
        if mode & 0o077:
            logger.warning(
                "the deployment secret file %s is readable by others (mode %o)", path, mode
            )
        return _read_secret_file(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    value = secrets.token_urlsafe(48)
    # Write a private temporary file, then link it into place: link() fails if the name
    # exists, so two processes starting at once agree on one secret, and a reader
    # never sees a half-written file.
    tmp = path.with_name(f".{path.name}.{os.getpid()}.{secrets.token_hex(4)}")
    try:
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "w") as fh:
            fh.write(value + "\n")
            fh.flush()
            os.fsync(fh.fileno())
        try:
            os.link(tmp, path)
        except FileExistsError:
            return _read_secret_file(path)
    except OSError as exc:
        raise ConfigurationError(f"cannot create the secret file {path}: {exc.strerror}") from None
    finally:
        tmp.unlink(missing_ok=True)
    logger.warning(
        "generated a deployment secret into %s (mode 0600); set KEYFOB_SECRET or "
        "KEYFOB_SECRET_FILE in production and keep it out of backups of the database",
        path,
    )
    return value.encode()
