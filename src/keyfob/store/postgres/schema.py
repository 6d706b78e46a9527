"""Bringing a PostgreSQL database's schema up to date: keyfob's migrations, applied once.

The ledger is read first, outside any transaction (one statement): an up-to-date
database, the usual case at start-up, costs nothing more. Otherwise all pending
migrations are applied in one transaction holding a transaction-scoped advisory lock, so
instances starting together apply each migration once and the others wait for it (then
find nothing left to do).
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from typing import TYPE_CHECKING

import asyncpg

from ..migrations import LEDGER_DDL, LEDGER_SELECT, Migration, ledger_insert, pending_migrations
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
    """What the ledger says is left to apply, read without a lock; all of them when the
    ledger does not exist yet. The locked transaction reads it again before applying."""
    try:
        rows = await conn.fetch(LEDGER_SELECT, timeout=limit)
    except asyncpg.UndefinedTableError:
        return list(migrations)
    return pending_migrations(migrations, {int(r[0]): str(r[1]) for r in rows})
