"""What a PostgreSQL store URL says: the options the store reads, the DSN asyncpg gets.

``postgresql://user:password@host:5432/db?pool_max=20&statement_timeout=5``: the store
reads ``pool_min``, ``pool_max``, ``statement_cache_size`` and the durations
``statement_timeout``, ``lock_timeout`` and ``connect_timeout`` (seconds, or with a unit
suffix: ``5``, ``0.5``, ``2s``) and ``session_url`` from the query; everything else
(``sslmode``, ``application_name``, …) stays in the DSN for asyncpg.

``session_url`` (URL-encoded) is a direct connection to PostgreSQL for what needs a
session of its own, the revocation listener (``LISTEN``) and the purge lock (a session
advisory lock), when the main URL goes through PgBouncer in transaction mode, where a
session does not outlive its transaction. It inherits nothing from the main URL.
"""

from __future__ import annotations

from typing import Any
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

from ...exceptions import ConfigurationError
from ...settings import parse_duration

__all__ = ["masked", "milliseconds", "names_application", "session_url", "split_url"]

_WHOLE_NUMBERS = ("pool_min", "pool_max", "statement_cache_size")
_DURATIONS = ("statement_timeout", "lock_timeout", "connect_timeout")
#: URL query parameters the store reads itself; any other is passed on to asyncpg.
_URL_OPTIONS = frozenset((*_WHOLE_NUMBERS, *_DURATIONS, "session_url"))


def split_url(url: str) -> tuple[str, dict[str, Any]]:
    """The DSN for asyncpg, and the store's own options (keyword arguments) in ``url``."""
    parts = urlsplit(url)
    if parts.scheme not in ("postgresql", "postgres"):
        raise ConfigurationError(f"not a PostgreSQL URL: {masked(url)!r}")
    query = parse_qsl(parts.query, keep_blank_values=True)
    ours = {k: v for k, v in query if k in _URL_OPTIONS}
    rest = [(k, v) for k, v in query if k not in _URL_OPTIONS]
    dsn = urlunsplit(parts._replace(query=urlencode(rest)))
    options: dict[str, Any] = {}
    for name in _WHOLE_NUMBERS:
        if name in ours:
            try:
                options[name] = int(ours[name])
            except ValueError:
                raise ConfigurationError(
                    f"{name} in the store URL must be a whole number, not {ours[name]!r}"
                ) from None
    for name in _DURATIONS:
        if name in ours:
            options[name] = parse_duration(ours[name])
    if "session_url" in ours:
        options["session_dsn"] = session_url(ours["session_url"])
    return dsn, options


def session_url(url: str) -> str:
    """``url`` if it can be the session URL (a PostgreSQL URL), else ConfigurationError."""
    if urlsplit(url).scheme not in ("postgresql", "postgres"):
        raise ConfigurationError(f"the session_url must be a PostgreSQL URL, not {masked(url)!r}")
    return url


def names_application(dsn: str) -> bool:
    """Whether the DSN sets ``application_name`` itself."""
    return any(k == "application_name" for k, _ in parse_qsl(urlsplit(dsn).query))


def masked(url: str) -> str:
    """The URL with its password hidden, for messages and repr."""
    try:
        parts = urlsplit(url)
        if parts.password is None:
            return url
        netloc = parts.netloc.replace(f":{parts.password}@", ":***@", 1)
        return urlunsplit(parts._replace(netloc=netloc))
    except ValueError:
        return "postgresql://…"


def milliseconds(seconds: float) -> int:
    """A duration as PostgreSQL's timeout settings take it."""
    return round(seconds * 1000)
