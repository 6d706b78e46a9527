"""``FileTokenStore``: keep a program's refresh token in a file only its owner can read.

The file holds the refresh token alone (JSON ``{"refresh_token": ...}``): the access token
stays in memory, and a restarted program refreshes once. Every save is atomic — a new
``0600`` file in the same directory, flushed to disk, then renamed over the old one — so a
crash at any moment leaves either the old token or the new one, never a torn file. Like
ssh with its keys, :meth:`~FileTokenStore.load` refuses a file that others can read.
"""

from __future__ import annotations

import contextlib
import json
import os
import stat
import tempfile
from pathlib import Path

from .errors import TokenFileError
from .tokens import TokenSet

__all__ = ["FileTokenStore"]

_MAX_FILE_BYTES = 64 * 1024


class FileTokenStore:
    """Pass it as ``token_saver=``; read the last saved token back with :meth:`load`."""

    def __init__(self, path: str | os.PathLike[str]) -> None:
        self.path = Path(path)

    def __repr__(self) -> str:
        return f"FileTokenStore({str(self.path)!r})"

    def __call__(self, tokens: TokenSet) -> None:
        self.save(tokens)

    def save(self, tokens: TokenSet) -> None:
        """Replace the stored refresh token with ``tokens.refresh_token``, atomically."""
        data = json.dumps({"refresh_token": tokens.refresh_token}).encode()
        directory = self.path.parent
        # mkstemp creates the file 0600 (O_EXCL), so the token is never readable by
        # others, not even between the write and the rename.
        fd, temporary = tempfile.mkstemp(prefix=f".{self.path.name}.", dir=directory)
        try:
            with os.fdopen(fd, "wb") as file:
                file.write(data)
                file.flush()
                os.fsync(file.fileno())
            os.replace(temporary, self.path)
        except BaseException:
            with contextlib.suppress(OSError):
                os.unlink(temporary)
            raise
        _fsync_directory(directory)

    def load(self) -> TokenSet | None:
        """The stored refresh token as a :class:`TokenSet`, or ``None`` if there is no file."""
        try:
            fd = os.open(self.path, os.O_RDONLY | getattr(os, "O_NOFOLLOW", 0))
        except FileNotFoundError:
            return None
        except OSError as exc:
            raise TokenFileError(f"cannot open {self.path}: {exc.strerror}") from None
        with os.fdopen(fd, "rb") as file:
            mode = os.fstat(file.fileno()).st_mode
            if mode & (stat.S_IRWXG | stat.S_IRWXO):
                raise TokenFileError(
                    f"{self.path} is accessible by others (mode {stat.filemode(mode)}); "
                    f"chmod 600 it, and treat the token in it as leaked"
                )
            raw = file.read(_MAX_FILE_BYTES + 1)
        try:
            data = json.loads(raw) if len(raw) <= _MAX_FILE_BYTES else None
        except (ValueError, UnicodeDecodeError):
            data = None
        token = data.get("refresh_token") if isinstance(data, dict) else None
        if not isinstance(token, str) or not token:
            raise TokenFileError(f"{self.path} holds no refresh token")
        return TokenSet(refresh_token=token)

    def clear(self) -> None:
        """Forget the stored token (after :class:`~keyfob.client.SessionEnded`, or logout)."""
        with contextlib.suppress(FileNotFoundError):
            self.path.unlink()
        _fsync_directory(self.path.parent)


def _fsync_directory(directory: Path) -> None:
    # The rename (or unlink) is durable only once the directory entry is on disk.
    fd = os.open(directory, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
