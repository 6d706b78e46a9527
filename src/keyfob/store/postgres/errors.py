"""PostgreSQL's failures as keyfob's errors, translated at the store's boundary.

Every call the store makes to asyncpg runs inside :func:`translate`, so "PostgreSQL
cannot serve this now" reaches the manager as :class:`~keyfob.exceptions.StoreUnavailable`
(a 503 at the edge) and a refused write as
:class:`~keyfob.exceptions.StoreIntegrityError`, whatever the driver raised.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from typing import Final

import asyncpg

from ...exceptions import KeyfobError, StoreIntegrityError, StoreUnavailable

__all__ = ["UNAVAILABLE", "translate"]

#: Errors that mean "PostgreSQL cannot serve this now": the connection is refused, lost
#: or closed, the server is starting or stopping, out of connections, or cancelled the
#: statement (statement_timeout) or gave up on a lock (lock_timeout). asyncio's
#: TimeoutError (a client-side timeout) is an OSError since Python 3.11.
UNAVAILABLE: Final = (
    asyncpg.PostgresError,
    asyncpg.InterfaceError,
    asyncpg.InternalClientError,
    OSError,
)


@contextlib.contextmanager
def translate(doing: str) -> Iterator[None]:
    """Turn driver, network and timeout errors into :class:`StoreUnavailable`."""
    try:
        yield
    except KeyfobError:
        raise
    except asyncpg.IntegrityConstraintViolationError as exc:
        raise StoreIntegrityError(f"PostgreSQL refused a write ({doing}): {exc}") from exc
    except UNAVAILABLE as exc:
        raise StoreUnavailable(
            f"PostgreSQL is unavailable ({doing}): {type(exc).__name__}: {exc}",
            retry_after=1,
        ) from exc
