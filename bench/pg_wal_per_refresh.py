"""What one refresh costs PostgreSQL: rows, HOT updates and WAL bytes, per schema variant.

For each variant of the sessions table, in a database of its own on one server:

1. ``sessions`` live sessions are created through ``PostgresStore.create_session``;
2. ``CHECKPOINT``, then one rotation of every session through ``PostgresStore.rotate``
   (the statement keyfob runs, autocommit, one round trip): the **first touch after a
   checkpoint**, which pays a full-page image for every page it dirties
   (``full_page_writes=on``, PostgreSQL's default);
3. ``passes`` more rotations of every session without a checkpoint: the **steady state**;
4. the store is closed (its backends exit and flush their statistics), then
   ``pg_stat_user_tables`` gives the rows updated and how many of them were HOT, and
   ``pg_relation_size`` the heap and index sizes.

WAL is ``pg_wal_lsn_diff(pg_current_wal_lsn(), before)`` around each phase; nothing else
writes to the server meanwhile (autovacuum is off during a phase and run explicitly,
with ``VACUUM``, between them). Also measured on the shipped schema: a login (insert), a
replay within grace (refused update + read) and a revocation.

Variants:

- ``0004 (shipped)``: migrations 0001-0004 as shipped. The purge's index is on
  ``expiry_day``, the day of the session's end, which a rotation changes at most once a
  day; ``fillfactor = 90``.
- ``0004 without its fillfactor``: the same with the default fillfactor (100).
- ``0004 with fillfactor 80``.
- ``before 0004 (0001-0003)``: 0001's ``sessions_by_expiry`` on
  ``LEAST(idle_expires_at, absolute_expires_at)`` put back, ``expiry_day`` dropped, the
  fillfactor reset: every rotation moves ``idle_expires_at``, so none can be HOT.
- ``no expiry index, fillfactor 90``: nothing a rotation changes is indexed at all, the
  floor the shipped schema is measured against.

Also: **a day of refreshes** on the shipped schema (``--day-sessions`` sessions, each
refreshed every 15 minutes for 24 hours of simulated time, passed to ``rotate`` as
``now``): each session's end crosses midnight once, and that rotation cannot be HOT.
And **migration 0004 on a populated database** (``--migrate-sessions`` sessions written
under 0001-0003): how long its table rewrite holds the lock.

Run::

    .venv/bin/python bench/pg_wal_per_refresh.py [--sessions 1000] [--passes 5] [--json]
        [--day-sessions 1000] [--migrate-sessions 100000]

A throwaway PostgreSQL server is started (tests/services.py: fsync off, which does not
change WAL volume, but ``full_page_writes`` on as in production) and removed afterwards.
docs/scaling.md quotes these numbers.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import secrets
import sys
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import asyncpg

try:
    import keyfob  # noqa: F401  (only to know whether it is installed)
except ImportError:  # a plain checkout: measure the source tree
    sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from keyfob.core.models import DeviceInfo, Session
from keyfob.store.migrations import load_migrations
from keyfob.store.postgres import PostgresStore
from keyfob.store.postgres.schema import apply_migrations

NOW = time.time()
IDLE_TTL = 7 * 86400.0
ABSOLUTE_TTL = 30 * 86400.0

# DDL run on the freshly migrated, empty tables before the sessions are created.
VARIANTS: dict[str, list[str]] = {
    "0004 (shipped)": [],
    "0004 without its fillfactor": ["ALTER TABLE sessions RESET (fillfactor)"],
    "0004 with fillfactor 80": ["ALTER TABLE sessions SET (fillfactor = 80)"],
    "before 0004 (0001-0003)": [
        "DROP INDEX sessions_by_expiry_day",
        "ALTER TABLE sessions DROP COLUMN expiry_day, RESET (fillfactor)",
        "CREATE INDEX sessions_by_expiry ON sessions (LEAST(idle_expires_at, absolute_expires_at))",
    ],
    "no expiry index, fillfactor 90": ["DROP INDEX sessions_by_expiry_day"],
}
#: A refresh every 15 minutes (the default access-token lifetime) for a day.
DAY_INTERVAL = 900.0
DAY_ROTATIONS = 96


@dataclass
class Result:
    variant: str
    sessions: int
    rotations: int
    wal_first_touch: float
    wal_steady: float
    rows_updated_per_rotation: float
    hot_ratio: float
    heap_kib: int
    indexes_kib: int
    us_per_rotation: float


def session(sid: str, user: str, now: float) -> Session:
    return Session(
        sid=sid,
        user_id=user,
        client_id="keyfob",
        scope="",
        secret_hash=secrets.token_bytes(32),
        counter=0,
        created_at=now,
        last_used_at=now,
        rotated_at=None,
        idle_expires_at=now + IDLE_TTL,
        absolute_expires_at=now + ABSOLUTE_TTL,
        device=DeviceInfo(
            user_agent="Mozilla/5.0 (X11; Linux x86_64) Firefox/140.0", ip="10.0.0.1"
        ),
    )


async def lsn(conn: asyncpg.Connection[asyncpg.Record]) -> str:
    return str(await conn.fetchval("SELECT pg_current_wal_lsn()::text"))


async def wal_since(conn: asyncpg.Connection[asyncpg.Record], before: str) -> int:
    return int(
        await conn.fetchval(
            "SELECT pg_wal_lsn_diff(pg_current_wal_lsn(), $1::text::pg_lsn)", before
        )
    )


async def new_database(admin_dsn: str) -> str:
    """A new, empty database on the server; its DSN."""
    db = f"wal_{secrets.token_hex(4)}"
    admin = await asyncpg.connect(admin_dsn)
    try:
        await admin.execute(f'CREATE DATABASE "{db}"')
    finally:
        await admin.close()
    return admin_dsn.rsplit("/", 1)[0] + f"/{db}"


async def update_counts(conn: asyncpg.Connection[asyncpg.Record], expected: int) -> tuple[int, int]:
    """(updates, HOT updates) of ``sessions``, once the statistics count ``expected``
    updates (a closed store's backends hand their counts over as they exit)."""
    deadline = time.monotonic() + 10
    while True:
        await conn.execute("SELECT pg_stat_clear_snapshot()")
        row = await conn.fetchrow(
            "SELECT n_tup_upd, n_tup_hot_upd FROM pg_stat_user_tables WHERE relname = 'sessions'"
        )
        assert row is not None
        if row["n_tup_upd"] >= expected or time.monotonic() > deadline:
            return int(row["n_tup_upd"]), int(row["n_tup_hot_upd"])
        await asyncio.sleep(0.05)


async def rotate_all(
    store: PostgresStore,
    sessions: list[Session],
    counters: dict[str, int],
    clock: Callable[[int], float] | None = None,
) -> float:
    """Rotate every session once; ``clock(i)`` is the i-th rotation's time (default: now)."""
    started = time.perf_counter()
    for i, s in enumerate(sessions):
        now = time.time() if clock is None else clock(i)
        done = await store.rotate(
            s.sid, counter=counters[s.sid], secret_hash=s.secret_hash, now=now, idle_ttl=IDLE_TTL
        )
        assert done is not None
        counters[s.sid] += 1
    return time.perf_counter() - started


async def measure_variant(
    admin_dsn: str, name: str, ddl: list[str], count: int, passes: int
) -> Result:
    dsn = await new_database(admin_dsn)
    conn = await asyncpg.connect(dsn)
    try:
        await conn.execute("ALTER SYSTEM SET autovacuum = off")
        await conn.execute("SELECT pg_reload_conf()")
        store = PostgresStore(dsn, pool_max=1)
        await store.open()
        for statement in ddl:
            await conn.execute(statement)
        sessions = [session(secrets.token_urlsafe(16), f"u{i % 100}", NOW) for i in range(count)]
        for s in sessions:
            await store.create_session(s)
        counters = {s.sid: 0 for s in sessions}
        await conn.execute("VACUUM ANALYZE sessions")

        await conn.execute("CHECKPOINT")
        before = await lsn(conn)
        await rotate_all(store, sessions, counters)
        first_touch = await wal_since(conn, before)

        before = await lsn(conn)
        took = 0.0
        for _ in range(passes):
            took += await rotate_all(store, sessions, counters)
        steady = await wal_since(conn, before)
        await store.close()  # its backend exits and flushes its statistics
        rotations = count * (passes + 1)
        updated, hot = await update_counts(conn, rotations)
        sizes = await conn.fetchrow(
            "SELECT pg_relation_size('sessions') AS heap, pg_indexes_size('sessions') AS indexes"
        )
        assert sizes is not None
        return Result(
            variant=name,
            sessions=count,
            rotations=rotations,
            wal_first_touch=first_touch / count,
            wal_steady=steady / (count * passes),
            rows_updated_per_rotation=updated / rotations,
            hot_ratio=hot / max(1, updated),
            heap_kib=sizes["heap"] // 1024,
            indexes_kib=sizes["indexes"] // 1024,
            us_per_rotation=1e6 * took / (count * passes),
        )
    finally:
        await conn.execute("ALTER SYSTEM RESET autovacuum")
        await conn.execute("SELECT pg_reload_conf()")
        await conn.close()


async def other_operations(admin_dsn: str) -> dict[str, float]:
    """WAL bytes of a login, a replay within grace and a revocation, shipped schema."""
    dsn = await new_database(admin_dsn)
    store = PostgresStore(dsn, pool_max=1)
    await store.open()
    conn = await asyncpg.connect(dsn)
    n = 500
    try:
        sessions = [session(secrets.token_urlsafe(16), f"u{i % 100}", NOW) for i in range(n)]
        await conn.execute("CHECKPOINT")
        for s in sessions[:50]:  # warm the pages: measure the steady state
            await store.create_session(s)
        before = await lsn(conn)
        for s in sessions[50:]:
            await store.create_session(s)
        login = await wal_since(conn, before) / (n - 50)
        for s in sessions:
            await store.rotate(
                s.sid, counter=0, secret_hash=s.secret_hash, now=time.time(), idle_ttl=IDLE_TTL
            )
        before = await lsn(conn)
        for s in sessions:
            # The previous token again: the update matches nothing, then a read (spec §3).
            assert (
                await store.rotate(
                    s.sid, counter=0, secret_hash=s.secret_hash, now=time.time(), idle_ttl=IDLE_TTL
                )
                is None
            )
            await store.get_session(s.sid)
        replay = await wal_since(conn, before) / n
        before = await lsn(conn)
        for s in sessions:
            await store.revoke_session(s.sid, now=time.time(), reason="logout")
        revoke = await wal_since(conn, before) / n
        return {"login": login, "replay_within_grace": replay, "revoke": revoke}
    finally:
        await conn.close()
        await store.close()


def day_clock(count: int, k: int) -> Callable[[int], float]:
    """The time of session i's k-th refresh in a day of 15-minute refreshes."""
    return lambda i: NOW + i * DAY_INTERVAL / count + k * DAY_INTERVAL


async def a_day_of_refreshes(admin_dsn: str, count: int) -> dict[str, Any]:
    """``count`` sessions refreshed every 15 minutes for a simulated day, shipped schema:
    the share of HOT updates and the WAL per refresh, day boundaries included, with the
    WAL broken down by record type (pg_walinspect, shipped with PostgreSQL 15)."""
    dsn = await new_database(admin_dsn)
    conn = await asyncpg.connect(dsn)
    store = PostgresStore(dsn, pool_max=1)
    try:
        # WAL positions are the whole server's: no autovacuum of the other variants'
        # databases may write meanwhile.
        await conn.execute("ALTER SYSTEM SET autovacuum = off")
        await conn.execute("SELECT pg_reload_conf()")
        await conn.execute("CREATE EXTENSION IF NOT EXISTS pg_walinspect")
        await store.open()
        sessions = [session(secrets.token_urlsafe(16), f"u{i % 100}", NOW) for i in range(count)]
        for s in sessions:
            await store.create_session(s)
        counters = {s.sid: 0 for s in sessions}
        # Session i refreshes at NOW + i * 900 / count + k * 900: the sessions' ends cross
        # midnight at different rotations, as real users' do.
        before = await lsn(conn)
        for k in range(1, DAY_ROTATIONS + 1):
            await rotate_all(store, sessions, counters, day_clock(count, k))
        after = await lsn(conn)
        wal = await wal_since(conn, before)
        await store.close()
        rotations = count * DAY_ROTATIONS
        updated, hot = await update_counts(conn, rotations)
        day_changes = int(
            await conn.fetchval(
                "SELECT count(*) FROM sessions WHERE expiry_day <> floor($1::float8 / 86400)",
                NOW + IDLE_TTL,
            )
        )
        records = await conn.fetch(
            'SELECT "resource_manager/record_type" AS kind, count, combined_size '
            "FROM pg_get_wal_stats($1::text::pg_lsn, $2::text::pg_lsn, true) "
            "WHERE count > 0 ORDER BY combined_size DESC",
            before,
            after,
        )
        return {
            "sessions": count,
            "rotations": rotations,
            "hot_ratio": hot / max(1, updated),
            "wal_per_refresh": wal / rotations,
            "sessions_whose_day_changed": day_changes,
            "wal_by_record": {
                r["kind"]: {
                    "count": r["count"],
                    "bytes_per_refresh": r["combined_size"] / rotations,
                }
                for r in records
            },
        }
    finally:
        await store.close()
        await conn.execute("ALTER SYSTEM RESET autovacuum")
        await conn.execute("SELECT pg_reload_conf()")
        await conn.close()


async def migrate_populated(admin_dsn: str, count: int) -> dict[str, float]:
    """Migration 0004 applied to a database holding ``count`` sessions written under
    0001-0003: how long it takes (its rewrite holds sessions' ACCESS EXCLUSIVE lock the
    whole time), and the heap's size and rows per page before and after."""
    dsn = await new_database(admin_dsn)
    conn = await asyncpg.connect(dsn)
    migrations = load_migrations("postgresql")
    try:
        await apply_migrations(conn, migrations[:3], statement_timeout=0)
        await conn.execute(
            "INSERT INTO sessions (sid, user_id, client_id, scope, secret_hash, counter, "
            "created_at, last_used_at, idle_expires_at, absolute_expires_at, user_agent, ip) "
            "SELECT md5(i::text), 'u' || (i % 1000), 'keyfob', '', "
            "decode(md5(i::text) || md5((-i)::text), 'hex'), 0, "
            "$1::float8, $1, $1 + $2, $1 + $3, $4, '10.0.0.1' "
            "FROM generate_series(1, $5) AS i",
            NOW,
            IDLE_TTL,
            ABSOLUTE_TTL,
            "Mozilla/5.0 (X11; Linux x86_64) Firefox/140.0",
            count,
        )
        await conn.execute("VACUUM ANALYZE sessions")
        await conn.execute("CHECKPOINT")
        heap = "SELECT pg_relation_size('sessions')"
        per_page = (
            "SELECT avg(n) FROM (SELECT count(*) AS n FROM sessions "
            "GROUP BY (ctid::text::point)[0]) AS pages"
        )
        heap_before, rows_before = await conn.fetchval(heap), await conn.fetchval(per_page)
        started = time.perf_counter()
        await apply_migrations(conn, migrations[:4], statement_timeout=0)
        took = time.perf_counter() - started
        heap_after, rows_after = await conn.fetchval(heap), await conn.fetchval(per_page)
        return {
            "sessions": count,
            "seconds": took,
            "heap_mib_before": heap_before / 2**20,
            "heap_mib_after": heap_after / 2**20,
            "rows_per_page_before": float(rows_before),
            "rows_per_page_after": float(rows_after),
        }
    finally:
        await conn.close()


async def run(
    dsn: str, count: int, passes: int, day_sessions: int, migrate_sessions: int
) -> dict[str, Any]:
    conn = await asyncpg.connect(dsn)
    version = str(await conn.fetchval("SHOW server_version"))
    fpw = str(await conn.fetchval("SHOW full_page_writes"))
    await conn.close()
    results = [
        await measure_variant(dsn, name, ddl, count, passes) for name, ddl in VARIANTS.items()
    ]
    return {
        "server": f"PostgreSQL {version}, full_page_writes={fpw}",
        "variants": [asdict(r) for r in results],
        "others": await other_operations(dsn),
        "day": await a_day_of_refreshes(dsn, day_sessions),
        "migration": await migrate_populated(dsn, migrate_sessions),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--sessions", type=int, default=1000)
    parser.add_argument("--passes", type=int, default=5, help="steady-state rotations per session")
    parser.add_argument("--day-sessions", type=int, default=1000)
    parser.add_argument("--migrate-sessions", type=int, default=100_000)
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()

    from tests.services import PostgresServer

    with PostgresServer(extra_settings={"full_page_writes": "on"}) as pg:
        out = asyncio.run(
            run(pg.dsn(), args.sessions, args.passes, args.day_sessions, args.migrate_sessions)
        )
    if args.json:
        print(json.dumps(out, indent=2))
        return
    print(f"{out['server']}; {args.sessions} sessions, 1 + {args.passes} rotations each\n")
    print(
        f"{'variant':<34} {'WAL B/refresh':>13} {'after ckpt':>10} {'rows/refresh':>12} "
        f"{'HOT':>6} {'heap KiB':>9} {'idx KiB':>8} {'µs':>6}"
    )
    for r in out["variants"]:
        print(
            f"{r['variant']:<34} {r['wal_steady']:>13.0f} {r['wal_first_touch']:>10.0f} "
            f"{r['rows_updated_per_rotation']:>12.2f} {r['hot_ratio']:>6.1%} "
            f"{r['heap_kib']:>9} {r['indexes_kib']:>8} {r['us_per_rotation']:>6.0f}"
        )
    others, day, mig = out["others"], out["day"], out["migration"]
    print(
        f"\nshipped schema, WAL bytes per operation: login (insert) {others['login']:.0f}, "
        f"replay within grace {others['replay_within_grace']:.0f}, revoke {others['revoke']:.0f}"
    )
    print(
        f"a day of 15-minute refreshes, {day['sessions']} sessions ({day['rotations']} "
        f"rotations): {day['hot_ratio']:.1%} HOT, {day['wal_per_refresh']:.0f} B WAL/refresh, "
        f"{day['sessions_whose_day_changed']} sessions' expiry day moved"
    )
    for kind, rec in day["wal_by_record"].items():
        print(f"  {kind:<28} {rec['count']:>8} records {rec['bytes_per_refresh']:>7.1f} B/refresh")
    print(
        f"migration 0004 on {mig['sessions']} sessions: {mig['seconds']:.2f} s; heap "
        f"{mig['heap_mib_before']:.1f} -> {mig['heap_mib_after']:.1f} MiB, rows/page "
        f"{mig['rows_per_page_before']:.1f} -> {mig['rows_per_page_after']:.1f}"
    )


if __name__ == "__main__":
    main()
