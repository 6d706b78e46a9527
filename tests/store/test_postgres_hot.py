"""Refreshes are HOT updates on PostgreSQL, and the purge still finds expired sessions
through an index (migration 0004, docs/scaling.md "What one refresh costs PostgreSQL").

A HOT (heap-only tuple) update writes no index entry; PostgreSQL makes one only when no
indexed column changes and the row's page has room. Both are properties of the schema,
so they are checked here by counting, not timing: ``pg_stat_user_tables`` says how many
of the table's updates were HOT.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import AsyncIterator, Iterator
from typing import Any

import asyncpg
import pytest

from keyfob.store.migrations import load_migrations
from keyfob.store.postgres import PostgresStore
from keyfob.store.postgres import statements as sql
from keyfob.store.postgres.schema import apply_migrations
from tests.services import PostgresServer

from .contract import IDLE_TTL, NOW, SECRET_HASH, make_session
from .test_postgres_store import empty_database

pytestmark = pytest.mark.postgres

#: Enough sessions to fill several pages, each rotated several times: the later
#: rotations only stay HOT if the dead versions the earlier ones left are pruned.
SESSIONS = 300
ROTATIONS = 5
#: 0001's purge index, which read idle_expires_at.
EXPRESSION_INDEX = (
    "CREATE INDEX sessions_by_expiry ON sessions (LEAST(idle_expires_at, absolute_expires_at))"
)


@pytest.fixture(scope="module")
def server() -> Iterator[PostgresServer]:
    """A server for this module alone. Pruning the dead row versions a HOT update needs
    room from depends on the whole server: a transaction another test left open there,
    in any database, can make PostgreSQL keep them for a while, and the next update of
    the page then cannot be HOT."""
    with PostgresServer() as own:
        yield own


@pytest.fixture
async def database(server: PostgresServer) -> str:
    return await empty_database(server, "keyfob_hot")


@pytest.fixture
async def raw(database: str) -> AsyncIterator[asyncpg.Connection[asyncpg.Record]]:
    conn = await asyncpg.connect(database)
    try:
        yield conn
    finally:
        await conn.close()


async def update_counts(raw: asyncpg.Connection[asyncpg.Record], expected: int) -> tuple[int, int]:
    """(updates, HOT updates) of ``sessions`` once the statistics count ``expected``
    updates: a backend hands its counts over when it exits, a moment after the store
    closed it."""
    deadline = time.monotonic() + 10
    while True:
        await raw.execute("SELECT pg_stat_clear_snapshot()")
        row = await raw.fetchrow(
            "SELECT n_tup_upd, n_tup_hot_upd FROM pg_stat_user_tables WHERE relname = 'sessions'"
        )
        assert row is not None
        if row["n_tup_upd"] >= expected or time.monotonic() > deadline:
            return int(row["n_tup_upd"]), int(row["n_tup_hot_upd"])
        await asyncio.sleep(0.05)


@pytest.mark.parametrize(
    ("ddl", "hot"),
    [
        pytest.param([], SESSIONS * ROTATIONS, id="shipped"),
        # The check can fail: with 0001's index back, no rotation is HOT.
        pytest.param([EXPRESSION_INDEX], 0, id="with 0001's expiry index"),
    ],
)
async def test_refreshes_are_hot_updates(
    database: str, raw: asyncpg.Connection[asyncpg.Record], ddl: list[str], hot: int
) -> None:
    """Every rotation through PostgresStore.rotate is a HOT update: the statistics count
    as many HOT updates as updates."""
    store = PostgresStore(database, pool_max=2)
    await store.open()
    try:
        # An autovacuum or autoanalyze that ran meanwhile would hold back the pruning of
        # dead versions for a moment; what is checked here is the schema, so keep it out.
        await raw.execute("ALTER TABLE sessions SET (autovacuum_enabled = false)")
        for statement in ddl:
            await raw.execute(statement)
        sids = [f"s{i}" for i in range(SESSIONS)]
        for sid in sids:
            await store.create_session(make_session(sid))
        for counter in range(ROTATIONS):
            for sid in sids:
                rotated = await store.rotate(
                    sid,
                    counter=counter,
                    secret_hash=SECRET_HASH,
                    now=NOW + 60 * (counter + 1),
                    idle_ttl=IDLE_TTL,
                )
                assert rotated is not None and rotated.counter == counter + 1
    finally:
        await store.close()  # its backends exit and hand over their statistics
    assert await update_counts(raw, SESSIONS * ROTATIONS) == (SESSIONS * ROTATIONS, hot)


async def test_sessions_leave_room_on_each_page(
    database: str, raw: asyncpg.Connection[asyncpg.Record]
) -> None:
    """The sessions table is filled to 90 % only: room for the new row versions."""
    store = PostgresStore(database)
    await store.open()
    await store.close()
    options = await raw.fetchval("SELECT reloptions FROM pg_class WHERE relname = 'sessions'")
    assert "fillfactor=90" in options


async def rows_per_page(raw: asyncpg.Connection[asyncpg.Record]) -> int:
    """The most sessions any page of the table holds."""
    return int(
        await raw.fetchval(
            "SELECT max(n) FROM (SELECT count(*) AS n FROM sessions "
            "GROUP BY (ctid::text::point)[0]) AS pages"
        )
    )


async def test_migration_0004_on_a_database_with_sessions(
    database: str, raw: asyncpg.Connection[asyncpg.Record]
) -> None:
    """A database written by a keyfob before 0004 that already holds sessions, opened by
    this one: 0004 is applied, each session gets its expiry day, the existing pages are
    rewritten with room left on them, and the purge finds the expired sessions."""
    migrations = load_migrations("postgresql")
    assert [m.name for m in migrations][3] == "0004_hot_refresh"
    await apply_migrations(raw, migrations[:3], statement_timeout=0)
    await raw.execute(
        "INSERT INTO sessions (sid, user_id, client_id, scope, secret_hash, counter, "
        "created_at, last_used_at, idle_expires_at, absolute_expires_at) "
        "SELECT 's' || i, 'u' || (i % 50), 'keyfob', '', '\\x00'::bytea, 0, $1::float8, $1, "
        "$1 + i * 600, $1 + 30 * 86400 FROM generate_series(1, 3000) AS i",
        NOW,
    )
    packed = await rows_per_page(raw)

    store = PostgresStore(database)
    await store.open()
    try:
        ledger = await raw.fetch("SELECT name FROM keyfob_migrations ORDER BY version")
        assert [r["name"] for r in ledger] == [m.name for m in migrations]
        assert await rows_per_page(raw) < packed
        with_day = await raw.fetchval(
            "SELECT count(*) FROM sessions WHERE expiry_day = floor(idle_expires_at / 86400)"
        )
        assert with_day == 3000
        # s1 … s144 end within a day of NOW, at NOW + 600 * i.
        purged = await store.purge_sessions(now=NOW + 86400, revoked_before=0, limit=1000)
        assert purged == 144
        assert await store.count_sessions() == 3000 - 144
    finally:
        await store.close()


def index_names(plan: dict[str, Any]) -> set[str]:
    """The indexes a plan (EXPLAIN FORMAT JSON) reads, and whether it scans a table whole."""
    found = {plan["Index Name"]} if "Index Name" in plan else set()
    if plan["Node Type"] == "Seq Scan":
        found.add(f"Seq Scan on {plan['Relation Name']}")
    for child in plan.get("Plans", []):
        found |= index_names(child)
    return found


@pytest.mark.parametrize("plan_cache_mode", ["force_custom_plan", "force_generic_plan"])
@pytest.mark.parametrize(
    ("statement", "index", "cut_off"),
    [
        pytest.param(sql.PURGE_EXPIRED, "sessions_by_expiry_day", NOW + 86400, id="expired"),
        pytest.param(sql.PURGE_REVOKED, "sessions_by_revoked_at", NOW + 1, id="revoked"),
    ],
)
async def test_the_purge_walks_an_index(
    database: str,
    raw: asyncpg.Connection[asyncpg.Record],
    plan_cache_mode: str,
    statement: str,
    index: str,
    cut_off: float,
) -> None:
    """On a table of 20,000 sessions of which a few are expired and a few revoked, each
    purge statement reads its index instead of the whole table: both as planned for its
    parameters and as the generic plan a prepared statement ends up with."""
    store = PostgresStore(database)
    await store.open()
    await store.close()
    await raw.execute(
        "INSERT INTO sessions (sid, user_id, client_id, scope, secret_hash, counter, "
        "created_at, last_used_at, idle_expires_at, absolute_expires_at, revoked_at) "
        "SELECT 's' || i, 'u' || (i % 500), 'keyfob', '', '\\x00'::bytea, 0, $1::float8, $1, "
        "$1 + (i % 30) * 86400 + i, $1 + 30 * 86400, "
        "CASE WHEN i % 100 = 0 THEN $1 END FROM generate_series(1, 20000) AS i",
        NOW,
    )
    await raw.execute("ANALYZE sessions")
    await raw.execute(f"SET plan_cache_mode = {plan_cache_mode}")
    await raw.execute(f"PREPARE purge AS {statement}")
    explained = await raw.fetchval(f"EXPLAIN (FORMAT JSON) EXECUTE purge({cut_off}, 500)")
    used = index_names(json.loads(explained)[0]["Plan"])
    assert index in used, used
    assert "Seq Scan on sessions" not in used, used
    # And it deletes what it should: the sessions that ended within a day of NOW are
    # those with i % 30 == 0; the revoked ones, i % 100 == 0, were revoked at NOW.
    status = await raw.execute(f"EXECUTE purge({cut_off}, 5000)")
    assert status == f"DELETE {20000 // 30 if index == 'sessions_by_expiry_day' else 200}"
