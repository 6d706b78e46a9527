"""Bringing a PostgreSQL database's schema up to date: keyfob's migrations, applied once.

The ledger is checked first, outside any transaction (one simple query, one round
trip): an up-to-date database, the usual case at start-up, costs nothing more. Otherwise
all pending migrations are applied in one transaction holding a transaction-scoped
advisory lock, so instances starting together apply each migration once and the others
wait for it (then find nothing left to do).
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from typing import TYPE_CHECKING

import asyncpg

from ..migrations import (
    LEDGER_DDL,
    LEDGER_SELECT,
    LEDGER_TABLE,
    Migration,
    ledger_insert,
    pending_migrations,
)
from .options import milliseconds
from .statements import MIGRATION_LOCK

if TYPE_CHECKING:
    from .pool import Connection

__all__ = ["apply_migrations"]


async def apply_migrations(
    conn: Connection, migrations: Sequence[Migration], *, statement_timeout: float
) -> list[Migration]:
    """Apply those of ``migrations`` the database lacks; return them.

    ``statement_timeout`` (seconds; 0 disables) bounds each statement, waiting for the
    lock included: migrations may take long, and so may another instance's.
    """
    limit = statement_timeout or None
    if not await _pending(conn, migrations, limit):
        return []
    async with conn.transaction():
        ms = milliseconds(statement_timeout)
        await conn.execute(
            f"SET LOCAL statement_timeout = {ms}; SET LOCAL lock_timeout = {ms}", timeout=limit
        )
        await conn.execute("SELECT pg_advisory_xact_lock($1)", MIGRATION_LOCK, timeout=limit)
        await conn.execute(LEDGER_DDL, timeout=limit)
        rows = await conn.fetch(LEDGER_SELECT, timeout=limit)
        todo = pending_migrations(migrations, {int(r[0]): str(r[1]) for r in rows})
        record = ledger_insert(["$1", "$2", "$3"])
        for migration in todo:
            # No parameters: asyncpg sends the file as one simple query, so a file may
            # hold many statements and dollar-quoted function bodies.
            await conn.execute(migration.sql, timeout=limit)
            await conn.execute(
                record, migration.version, migration.name, time.time(), timeout=limit
            )
    return todo


async def _pending(
    conn: Connection, migrations: Sequence[Migration], limit: float | None
) -> list[Migration]:
    """What is left to apply, read without a lock: nothing when the ledger holds exactly
    ``migrations``, else all of them (the locked transaction reads the ledger properly,
    and refuses a ledger it does not recognise)."""
    if not migrations:
        return []
    try:
        # A simple query (no parameters), whose status says whether a row came back:
        # one round trip where a prepared statement takes two.
        status = await conn.execute(_up_to_date_query(migrations), timeout=limit)
    except asyncpg.UndefinedTableError:
        return list(migrations)
    return [] if status == "SELECT 1" else list(migrations)


def _up_to_date_query(migrations: Sequence[Migration]) -> str:
    """One row if the ledger records exactly ``migrations``, none otherwise.

    The values are spliced in: versions are numbers and names match ``[0-9]{4}_[a-z0-9_]+``
    (migrations.load_migrations refuses any other file name), so none needs quoting.
    """
    known = ", ".join(f"({m.version}, '{m.name}')" for m in migrations)
    count = len(migrations)
    return (
        f"SELECT 1 FROM {LEDGER_TABLE} HAVING count(*) = {count} "  # noqa: S608 (see above)
        f"AND count(*) FILTER (WHERE (version, name) IN ({known})) = {count}"
    )
