"""The PostgreSQL store: keyfob's production store (spec §6), shared by many instances.

Connections. A pool of asyncpg connections (``pool_min`` opened up front, up to
``pool_max`` on demand; :mod:`.pool`) that carry ``statement_timeout`` and
``lock_timeout``, so no call waits on the server for long: a query the server cancels, a
lock it cannot get, a refused or dropped connection and a client-side timeout all
become :class:`~keyfob.exceptions.StoreUnavailable` (:mod:`.errors`). A connection lost
while PostgreSQL restarts is replaced on its next use, so the store recovers by itself,
without being reopened.

One round trip per refresh. ``rotate`` is one ``UPDATE … RETURNING`` outside any
explicit transaction (spec §3): under READ COMMITTED, concurrent updates of the same row
queue on its row lock and each re-checks the ``WHERE`` against the winner's version, so of
callers presenting the same counter exactly one matches, on whichever instance. asyncpg
prepares each statement (:mod:`.statements`) once per connection and keeps it.

Revocations across instances. A trigger sends ``NOTIFY`` in the transaction of every
revocation; each store listens on a connection of its own (:mod:`.listener`) and
:meth:`PostgresStore.revocation_marker` moves with what it hears.

Migrations. Applied on :meth:`~PostgresStore.open` under an advisory lock, so instances
starting together apply each migration once (:mod:`.schema`).

PgBouncer. In transaction mode, prepared statements must not be cached across
transactions: add ``statement_cache_size=0`` to the URL (asyncpg then uses unnamed
statements, which PgBouncer 1.18, Debian bookworm's, passes through). ``LISTEN`` and the
purge lock's session advisory lock need a session: give the connections that need one a
direct URL, ``session_url=<URL-encoded postgresql://…>`` in the store URL
(``session_dsn`` in Python), or a session-mode pool. Migrations need no session (their
lock is a transaction-level one). Tested with a real PgBouncer in
``tests/store/test_postgres_pgbouncer.py``. PgBouncer also refuses unknown startup
parameters: list ``statement_timeout`` and ``lock_timeout`` in its
``ignore_startup_parameters`` and set them on the role instead
(``ALTER ROLE keyfob SET statement_timeout = '5s'``).
"""

from .listener import REVOCATION_CHANNEL
from .store import PostgresStore

__all__ = ["REVOCATION_CHANNEL", "PostgresStore"]
