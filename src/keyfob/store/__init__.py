"""Stores: one protocol, backends chosen by URL scheme and imported only when used."""

from __future__ import annotations

from typing import TYPE_CHECKING

from ..exceptions import ConfigurationError
from .protocol import EventStore, KeyStore, RevokedSession, SessionStore, Store, UserStore

if TYPE_CHECKING:
    from ..settings import Settings

__all__ = [
    "EventStore",
    "KeyStore",
    "RevokedSession",
    "SessionStore",
    "Store",
    "UserStore",
    "open_store",
]


def open_store(url: str, *, settings: Settings | None = None) -> Store:
    """The store for ``url`` (not yet opened: ``await store.open()``).

    ``memory://``, ``sqlite:///relative.db``, ``sqlite:////absolute.db``,
    ``postgresql://user@host/db``. A backend's driver is imported only here, so
    ``import keyfob`` never pulls in a database driver.
    """
    scheme, sep, _ = url.partition("://")
    if not sep:
        raise ConfigurationError(f"not a store URL: {url!r} (expected e.g. sqlite:///keyfob.db)")
    if scheme == "memory":
        from .memory import MemoryStore

        return MemoryStore()
    if scheme == "sqlite":
        from .sqlite import SQLiteStore

        return SQLiteStore.from_url(url, settings=settings)
    if scheme in {"postgresql", "postgres"}:
        try:
            from .postgres import PostgresStore
        except ImportError as exc:
            raise ConfigurationError(
                "the PostgreSQL store needs the 'postgres' extra: "
                f"pip install 'keyfob[postgres]' ({exc})"
            ) from None
        return PostgresStore.from_url(url, settings=settings)
    raise ConfigurationError(
        f"unsupported store URL scheme {scheme!r}: use memory://, sqlite:/// or postgresql://"
    )
