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

- ``shipped``: migration 0001 as is. ``sessions_by_expiry`` indexes
  ``LEAST(idle_expires_at, absolute_expires_at)`` and every rotation moves
  ``idle_expires_at``, so no rotation can be a HOT update.
- ``shipped, fillfactor 90``: the same, with room left on each page.
- ``no expiry index``: ``sessions_by_expiry`` dropped: nothing a rotation changes is
  indexed any more.
- ``no expiry index, fillfactor 90``.
- ``day-bucket expiry index (trigger)``: the purge's index on an integer column holding
  the idle deadline's day, which a rotation changes at most once a day.

Run::

    .venv/bin/python bench/pg_wal_per_refresh.py [--sessions 1000] [--passes 5] [--json]

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
from dataclasses import asdict, dataclass
from pathlib import Path

import asyncpg

try:
    import keyfob  # noqa: F401  (only to know whether it is installed)
except ImportError:  # a plain checkout: measure the source tree
    sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from keyfob.core.models import DeviceInfo, Session
from keyfob.store.postgres import PostgresStore

NOW = time.time()
IDLE_TTL = 7 * 86400.0
ABSOLUTE_TTL = 30 * 86400.0

VARIANTS: dict[str, list[str]] = {
    "shipped": [],
    "shipped, fillfactor 90": ["ALTER TABLE sessions SET (fillfactor = 90)"],
    "no expiry index": ["DROP INDEX sessions_by_expiry"],
    "no expiry index, fillfactor 90": [
        "DROP INDEX sessions_by_expiry",
        "ALTER TABLE sessions SET (fillfactor = 90)",
    ],
    # The purge keeps an index, on a column whose value changes once a day per session at
    # most: PostgreSQL compares old and new values of indexed columns, so a rotation that
    # leaves the day unchanged stays HOT. Filled by a trigger here so that the shipped
    # rotate statement can be measured unchanged; a migration would set it in the UPDATE.
    "day-bucket expiry index (trigger)": [
        "DROP INDEX sessions_by_expiry",
        "ALTER TABLE sessions ADD COLUMN idle_day integer",
        "CREATE INDEX sessions_by_idle_day ON sessions (idle_day)",
        "CREATE FUNCTION set_idle_day() RETURNS trigger LANGUAGE plpgsql AS $$ "
        "BEGIN NEW.idle_day := floor(NEW.idle_expires_at / 86400); RETURN NEW; END $$",
        "CREATE TRIGGER sessions_idle_day BEFORE INSERT OR UPDATE ON sessions "
        "FOR EACH ROW EXECUTE FUNCTION set_idle_day()",
    ],
}


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


async def rotate_all(
    store: PostgresStore, sessions: list[Session], counters: dict[str, int]
) -> float:
    started = time.perf_counter()
    for s in sessions:
        now = time.time()
        done = await store.rotate(
            s.sid, counter=counters[s.sid], secret_hash=s.secret_hash, now=now, idle_ttl=IDLE_TTL
        )
        assert done is not None
        counters[s.sid] += 1
    return time.perf_counter() - started


async def measure_variant(
    admin_dsn: str, name: str, ddl: list[str], count: int, passes: int
) -> Result:
    db = f"wal_{secrets.token_hex(4)}"
    admin = await asyncpg.connect(admin_dsn)
    await admin.execute(f'CREATE DATABASE "{db}"')
    await admin.close()
    dsn = admin_dsn.rsplit("/", 1)[0] + f"/{db}"
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
        await asyncio.sleep(0.5)
        await conn.execute("SELECT pg_stat_clear_snapshot()")
        row = await conn.fetchrow(
            "SELECT n_tup_upd, n_tup_hot_upd FROM pg_stat_user_tables WHERE relname = 'sessions'"
        )
        sizes = await conn.fetchrow(
            "SELECT pg_relation_size('sessions') AS heap, pg_indexes_size('sessions') AS indexes"
        )
        rotations = count * (passes + 1)
        assert row is not None and sizes is not None
        return Result(
            variant=name,
            sessions=count,
            rotations=rotations,
            wal_first_touch=first_touch / count,
            wal_steady=steady / (count * passes),
            rows_updated_per_rotation=row["n_tup_upd"] / rotations,
            hot_ratio=row["n_tup_hot_upd"] / max(1, row["n_tup_upd"]),
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
    db = f"wal_{secrets.token_hex(4)}"
    admin = await asyncpg.connect(admin_dsn)
    await admin.execute(f'CREATE DATABASE "{db}"')
    await admin.close()
    dsn = admin_dsn.rsplit("/", 1)[0] + f"/{db}"
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


async def run(dsn: str, count: int, passes: int) -> tuple[list[Result], dict[str, float], str]:
    conn = await asyncpg.connect(dsn)
    version = str(await conn.fetchval("SHOW server_version"))
    fpw = str(await conn.fetchval("SHOW full_page_writes"))
    await conn.close()
    results = [
        await measure_variant(dsn, name, ddl, count, passes) for name, ddl in VARIANTS.items()
    ]
    others = await other_operations(dsn)
    return results, others, f"PostgreSQL {version}, full_page_writes={fpw}"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--sessions", type=int, default=1000)
    parser.add_argument("--passes", type=int, default=5, help="steady-state rotations per session")
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()

    from tests.services import PostgresServer

    with PostgresServer(extra_settings={"full_page_writes": "on"}) as pg:
        results, others, server = asyncio.run(run(pg.dsn(), args.sessions, args.passes))
    if args.json:
        print(
            json.dumps(
                {"server": server, "variants": [asdict(r) for r in results], "others": others},
                indent=2,
            )
        )
        return
    print(f"{server}; {args.sessions} sessions, 1 + {args.passes} rotations each\n")
    print(
        f"{'variant':<34} {'WAL B/refresh':>13} {'after ckpt':>10} {'rows/refresh':>12} "
        f"{'HOT':>6} {'heap KiB':>9} {'idx KiB':>8} {'µs':>6}"
    )
    for r in results:
        print(
            f"{r.variant:<34} {r.wal_steady:>13.0f} {r.wal_first_touch:>10.0f} "
            f"{r.rows_updated_per_rotation:>12.2f} {r.hot_ratio:>6.0%} {r.heap_kib:>9} "
            f"{r.indexes_kib:>8} {r.us_per_rotation:>6.0f}"
        )
    print(
        f"\nshipped schema, WAL bytes per operation: login (insert) {others['login']:.0f}, "
        f"replay within grace {others['replay_within_grace']:.0f}, revoke {others['revoke']:.0f}"
    )


if __name__ == "__main__":
    main()
