"""The PostgreSQL store: the conformance suite, and what only PostgreSQL has.

Every test gets a fresh, empty database on the run's throwaway server
(:func:`tests.services.postgres_server`); tests that stop the server get one of their own.
"""

from __future__ import annotations

import asyncio
import functools
import math
import re
import time
import urllib.parse
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from pathlib import Path
from typing import Any

import asyncpg
import pytest

from keyfob import SessionManager
from keyfob.core.models import EventKind
from keyfob.exceptions import StoreUnavailable
from keyfob.store import open_store
from keyfob.store.migrations import load_migrations
from keyfob.store.postgres import REVOCATION_CHANNEL, PostgresStore
from keyfob.store.protocol import Store
from keyfob.testing import FAST_SETTINGS
from tests.services import PostgresServer, free_port

from ..relay import PausableRelay
from .contract import (
    IDLE_TTL,
    NOW,
    SECRET_HASH,
    RawSQL,
    StoreContract,
    StoreFactory,
    make_session,
    make_user,
)

pytestmark = pytest.mark.postgres

MIGRATIONS = [m.name for m in load_migrations("postgresql")]
#: How fast a revocation through one instance reaches another's revocation_marker().
MARKER_DEADLINE = 1.0


async def create_database(server: PostgresServer) -> str:
    """A new empty database on ``server``; its DSN."""
    name = f"keyfob_{uuid.uuid4().hex[:16]}"
    conn = await asyncpg.connect(server.dsn())
    try:
        await conn.execute(f'CREATE DATABASE "{name}"')
    finally:
        await conn.close()
    return server.dsn(name)


async def drop_database(server: PostgresServer, dsn: str) -> None:
    name = dsn.rsplit("/", 1)[-1]
    conn = await asyncpg.connect(server.dsn())
    try:
        # FORCE: a test that failed half-way may have left a connection open.
        await conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    finally:
        await conn.close()


async def empty_database(server: PostgresServer, name: str) -> str:
    """The database ``name`` on ``server``, created if missing, emptied if not; its DSN.

    Emptying (a new ``public`` schema) takes a few milliseconds where copying a template
    into a new database takes half a second: it keeps the suite fast.
    """
    admin = await asyncpg.connect(server.dsn())
    try:
        if await admin.fetchval("SELECT 1 FROM pg_database WHERE datname = $1", name) is None:
            await admin.execute(f'CREATE DATABASE "{name}"')
            return server.dsn(name)
        # A test that failed half-way may have left a connection (and its locks) behind.
        await admin.execute(
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = $1",
            name,
        )
    finally:
        await admin.close()
    conn = await asyncpg.connect(server.dsn(name))
    try:
        await conn.execute("DROP SCHEMA public CASCADE; CREATE SCHEMA public")
    finally:
        await conn.close()
    return server.dsn(name)


@pytest.fixture
async def database(postgres_server: PostgresServer) -> str:
    """An empty database (no keyfob schema, no data) for this test; its DSN."""
    return await empty_database(postgres_server, "keyfob_test")


class TestPostgresStore(StoreContract):
    supports_multiprocess = True
    supports_sql = True
    migrations = MIGRATIONS
    unusable_urls = (
        "sqlite:///keyfob.db",
        "postgresql://localhost/keyfob?pool_max=many",
        "postgresql://localhost/keyfob?pool_min=5&pool_max=2",
        "postgresql://localhost/keyfob?pool_max=0",
        "postgresql://localhost/keyfob?statement_timeout=-1",
        "postgresql://localhost/keyfob?lock_timeout=soon",
        "postgresql://localhost/keyfob?connect_timeout=0",
        "postgresql://localhost/keyfob?statement_cache_size=-1",
    )
    schema_query = (
        "SELECT relname FROM pg_class WHERE relnamespace = 'public'::regnamespace "
        "UNION SELECT tgname FROM pg_trigger WHERE NOT tgisinternal"
    )
    schema_objects = frozenset(
        {
            "sessions",
            "users",
            "events",
            "signing_keys",
            "keyfob_migrations",
            "sessions_by_user",
            "sessions_by_revoked_at",
            "sessions_by_expiry_day",
            "users_username_key_unique",
            "events_by_user",
            "events_by_sid",
            "events_by_kind",
            "sessions_notify_revoked",
            "sessions_notify_inserted_revoked",
        }
    )
    refuse_key_k2 = "ALTER TABLE signing_keys ADD CONSTRAINT refuse_k2 CHECK (kid <> 'k2')"

    @pytest.fixture
    def store_factory(self, database: str) -> StoreFactory:
        return functools.partial(PostgresStore, database, pool_max=5)

    @pytest.fixture
    def write_delays(self) -> list[tuple[Store, float]]:
        # connect_timeout twice (a pooled connection, then opening one), the statement,
        # and the client's second past statement_timeout; nothing bounds it without one.
        dsn = "postgresql://kf@localhost/keyfob"
        return [
            (PostgresStore(dsn), 16.0),
            (PostgresStore(dsn, connect_timeout=1, statement_timeout=3), 6.0),
            (PostgresStore(dsn, connect_timeout=0.5, statement_timeout=0.25), 2.25),
            (PostgresStore(dsn, statement_timeout=0), math.inf),
        ]

    @pytest.fixture
    def raw_sql(self, raw: asyncpg.Connection[asyncpg.Record]) -> RawSQL:
        async def run(statement: str) -> list[tuple[Any, ...]]:
            return [tuple(row) for row in await raw.fetch(statement)]

        return run


@pytest.fixture
async def store(database: str) -> AsyncIterator[PostgresStore]:
    store = PostgresStore(database, pool_max=5)
    await store.open()
    try:
        yield store
    finally:
        await store.close()


@pytest.fixture
async def raw(database: str) -> AsyncIterator[asyncpg.Connection[asyncpg.Record]]:
    """A plain connection to the test's database, as another program would have."""
    conn = await asyncpg.connect(database)
    try:
        yield conn
    finally:
        await conn.close()


async def eventually(condition: Callable[[], bool], within: float) -> float:
    """Wait until ``condition()`` holds; fail after ``within`` seconds. Returns the wait."""
    start = time.monotonic()
    while not condition():
        if time.monotonic() - start > within:
            raise AssertionError(f"not within {within} s")
        await asyncio.sleep(0.005)
    return time.monotonic() - start


async def until(check: Callable[[], Awaitable[bool]], within: float) -> None:
    """Wait until the (async) ``check`` holds; fail after ``within`` seconds."""
    start = time.monotonic()
    while not await check():
        if time.monotonic() - start > within:
            raise AssertionError(f"not within {within} s")
        await asyncio.sleep(0.01)


async def rotate_s1(store: PostgresStore, counter: int = 0) -> object:
    return await store.rotate(
        "s1", counter=counter, secret_hash=SECRET_HASH, now=NOW + counter + 1, idle_ttl=IDLE_TTL
    )


# URLs and options


def test_url_options_are_read_and_the_rest_goes_to_the_driver() -> None:
    """Pool and timeout options come from the query; other parameters stay in the DSN."""
    store = PostgresStore.from_url(
        "postgresql://kf:s3cret@db.internal:6432/auth?pool_min=2&pool_max=20"
        "&statement_timeout=3&lock_timeout=0.5&connect_timeout=2s&statement_cache_size=0"
        "&sslmode=require"
    )
    assert (store.pool_min, store.pool_max, store.statement_cache_size) == (2, 20, 0)
    assert (store.statement_timeout, store.lock_timeout, store.connect_timeout) == (3, 0.5, 2)
    assert store.dsn == "postgresql://kf:s3cret@db.internal:6432/auth?sslmode=require"
    assert store.server_settings["statement_timeout"] == "3000"
    assert store.server_settings["lock_timeout"] == "500"
    assert (
        repr(store) == "PostgresStore('postgresql://kf:***@db.internal:6432/auth?sslmode=require')"
    )
    assert "s3cret" not in repr(store)


@pytest.mark.parametrize("scheme", ["postgresql", "postgres"])
def test_open_store_picks_postgres(scheme: str) -> None:
    """open_store() serves postgresql:// and postgres:// URLs with the PostgreSQL store."""
    store = open_store(f"{scheme}://kf@localhost/keyfob?pool_max=3")
    assert isinstance(store, PostgresStore)
    assert store.scheme == "postgresql"
    assert store.pool_max == 3


async def test_pool_size_comes_from_the_url(
    database: str, raw: asyncpg.Connection[asyncpg.Record]
) -> None:
    """pool_min connections are opened up front; however many calls run at once, the pool
    never holds more than pool_max (plus the listener's own connection)."""
    store = PostgresStore.from_url(database + "?pool_min=2&pool_max=3&application_name=kf-pool")

    async def connections() -> int:
        count = await raw.fetchval(
            "SELECT count(*) FROM pg_stat_activity WHERE application_name = 'kf-pool'"
        )
        return int(count)

    await store.open()
    try:
        assert await connections() == 2 + 1
        await asyncio.gather(*(store.count_sessions() for _ in range(30)))
        assert await connections() == 3 + 1
    finally:
        await store.close()
    assert await connections() == 0


async def test_a_cancelled_call_leaves_no_broken_connection_behind(
    database: str, raw: asyncpg.Connection[asyncpg.Record]
) -> None:
    """A call cancelled while it waits on the server (its client went away) has its
    statement cancelled on the server, and its connection serves the next call."""
    store = PostgresStore(database, pool_min=1, pool_max=1)
    await store.open()

    async def has_lock_waiters(expected: bool) -> bool:
        query = "SELECT count(*) > 0 FROM pg_stat_activity WHERE wait_event_type = 'Lock'"
        return bool(await raw.fetchval(query)) is expected

    try:
        await store.create_session(make_session())
        async with raw.transaction():
            await raw.execute("SELECT 1 FROM sessions WHERE sid = 's1' FOR UPDATE")
            waiting = asyncio.ensure_future(rotate_s1(store))
            await until(lambda: has_lock_waiters(True), within=2)
            waiting.cancel()
            with pytest.raises(asyncio.CancelledError):
                await waiting
            # The server gives up the statement while the lock is still held: it never ran.
            await until(lambda: has_lock_waiters(False), within=2)
        assert await store.get_session("s1") == make_session()  # the same, single connection
        assert await rotate_s1(store) is not None
    finally:
        await store.close()


async def test_without_a_statement_cache_everything_still_works(database: str) -> None:
    """statement_cache_size=0 (PgBouncer in transaction mode): rotation and reads work."""
    store = PostgresStore.from_url(database + "?statement_cache_size=0")
    await store.open()
    try:
        await store.create_session(make_session())
        for counter in range(3):
            assert await rotate_s1(store, counter) is not None
        session = await store.get_session("s1")
        assert session is not None and session.counter == 3
    finally:
        await store.close()


# rotation: one statement, one round trip


def logged_statements(log: Path, start: int, pid: int) -> list[str]:
    """The statements backend ``pid`` logged (log_statement=all) after byte ``start``."""
    with log.open("rb") as fh:
        fh.seek(start)
        text = fh.read().decode(errors="replace")
    pattern = re.compile(rf"\[{pid}\] LOG:  (?:statement|execute [^:]*): (.*)")
    return [m.group(1) for m in pattern.finditer(text)]


async def test_rotate_is_one_statement_without_a_transaction(
    database: str, postgres_server: PostgresServer
) -> None:
    """The server sees exactly one statement per rotation: UPDATE … RETURNING, no BEGIN,
    no COMMIT, and no reset query when the pooled connection is released."""
    store = PostgresStore(
        database, pool_min=1, pool_max=1, server_settings={"log_statement": "all"}
    )
    await store.open()
    try:
        await store.create_session(make_session())
        pid = await store._fetchval("SELECT pg_backend_pid()")
        assert await rotate_s1(store, 0) is not None  # prepares the statement on this connection
        await store.get_session("before")
        start = postgres_server.log_path.stat().st_size
        assert await rotate_s1(store, 1) is not None
        assert await rotate_s1(store, 1) is None  # refused: also a single statement
        await store.get_session("after")

        def after_logged() -> bool:
            return any("'after'" in line for line in _detail_lines(postgres_server.log_path, start))

        await eventually(after_logged, within=5)
        statements = logged_statements(postgres_server.log_path, start, pid)
        assert len(statements) == 3, statements
        rotations, closing = statements[:2], statements[2]
        for statement in rotations:
            assert statement.startswith("UPDATE sessions SET counter = counter + 1")
            assert statement.endswith("revoked_reason, auth_time")  # … RETURNING <columns>
            assert "RETURNING" in statement
        assert closing.startswith("SELECT sid, user_id")
    finally:
        await store.close()


def _detail_lines(log: Path, start: int) -> list[str]:
    with log.open("rb") as fh:
        fh.seek(start)
        return [
            line for line in fh.read().decode(errors="replace").splitlines() if "DETAIL" in line
        ]


# timeouts and locks: StoreUnavailable, quickly, nothing half-done


@pytest.mark.parametrize(
    ("options", "cause"),
    [
        pytest.param(
            {"lock_timeout": 0.2, "statement_timeout": 10}, "LockNotAvailable", id="lock_timeout"
        ),
        pytest.param(
            {"lock_timeout": 0, "statement_timeout": 0.3}, "QueryCanceled", id="statement_timeout"
        ),
    ],
)
async def test_a_held_row_lock_surfaces_as_store_unavailable_quickly(
    database: str,
    raw: asyncpg.Connection[asyncpg.Record],
    options: dict[str, float],
    cause: str,
) -> None:
    """A rotation blocked by another transaction's row lock fails within the configured
    timeout with StoreUnavailable, changes nothing, and works once the lock is gone."""
    store = PostgresStore(database, **options)
    await store.open()
    try:
        await store.create_session(make_session())
        async with raw.transaction():
            await raw.execute("SELECT 1 FROM sessions WHERE sid = 's1' FOR UPDATE")
            started = time.monotonic()
            with pytest.raises(StoreUnavailable, match=cause) as caught:
                await rotate_s1(store)
            assert time.monotonic() - started < 2.0
            assert caught.value.retry_after == 1
            with pytest.raises(StoreUnavailable):
                await store.revoke_session("s1", now=NOW + 1, reason="logout")
            # Readers do not wait for row locks.
            assert await store.get_session("s1") == make_session()
        rotated = await rotate_s1(store)
        assert rotated is not None
    finally:
        await store.close()


async def test_a_refresh_refused_by_a_partition_is_not_a_theft_alarm_when_retried(
    database: str,
) -> None:
    """A refresh keyfob gave up on (StoreUnavailable) while the network to PostgreSQL was
    paused may still run once the network heals. Its grace window opens when the server
    applied it, so the retry the 503 asked for, later than the grace window counted from
    the request, gets the identical successor instead of revoking the session (spec §4)."""
    grace = 2.0
    settings = FAST_SETTINGS.replace(grace=grace)
    parsed = urllib.parse.urlsplit(database)
    with PausableRelay(parsed.hostname or "127.0.0.1", parsed.port or 5432) as relay:
        dsn = parsed._replace(netloc=f"{parsed.username}@127.0.0.1:{relay.port}").geturl()
        # One pooled connection, which has prepared the rotation by the time of the pause
        # (as any connection of a running server has): what is held is the statement itself.
        store = PostgresStore(dsn, connect_timeout=1, statement_timeout=0.5, pool_max=1)
        async with SessionManager(settings, store) as manager:
            await manager.register("alice", "correct horse battery staple")
            first = await manager.login("alice", "correct horse battery staple")
            pair = await manager.refresh(first.refresh_token)
            relay.pause()
            with pytest.raises(StoreUnavailable):
                await manager.refresh(pair.refresh_token)
            # Past the grace window counted from the refused request, then the network heals.
            await asyncio.sleep(grace + 1.0)
            relay.resume()
            retried = await manager.refresh(pair.refresh_token)
            assert retried.session.counter == pair.session.counter + 1
            assert not (await store.get_session(pair.session.sid)).revoked  # type: ignore[union-attr]
            events = await manager.events(kind=EventKind.REUSE_DETECTED)
            assert events == []


async def test_purge_skips_rows_another_transaction_holds(
    store: PostgresStore, raw: asyncpg.Connection[asyncpg.Record]
) -> None:
    """A purge never waits for a row lock: it leaves locked rows for its next batch."""
    for sid in ("a", "b", "c"):
        await store.create_session(make_session(sid, idle_expires_at=NOW + 10))
    async with raw.transaction():
        await raw.execute("SELECT 1 FROM sessions WHERE sid = 'b' FOR UPDATE")
        started = time.monotonic()
        assert await store.purge_sessions(now=NOW + 20, revoked_before=NOW, limit=10) == 2
        assert time.monotonic() - started < 1.0
        assert await store.count_sessions() == 1
    assert await store.purge_sessions(now=NOW + 20, revoked_before=NOW, limit=10) == 1
    assert await store.count_sessions() == 0


async def test_an_unreachable_server_is_unavailable_at_once() -> None:
    """Opening a store whose server refuses connections raises StoreUnavailable, fast."""
    store = PostgresStore(f"postgresql://postgres@127.0.0.1:{free_port()}/keyfob")
    started = time.monotonic()
    with pytest.raises(StoreUnavailable, match="unavailable"):
        await store.open()
    assert time.monotonic() - started < 2.0
    await store.close()


async def test_usernames_sort_by_code_point_whatever_the_collation(
    postgres_server: PostgresServer,
) -> None:
    """list_users orders names as the other stores do, even in a database whose collation
    would sort case-insensitively."""
    name = f"keyfob_{uuid.uuid4().hex[:16]}"
    admin = await asyncpg.connect(postgres_server.dsn())
    try:
        # English collation: "alice" < "bob" < "Carol" < "Dave" (case is a tie-breaker).
        await admin.execute(
            f'CREATE DATABASE "{name}" TEMPLATE template0 LOCALE_PROVIDER icu '
            "ICU_LOCALE 'en' LOCALE 'C'"
        )
    finally:
        await admin.close()
    store = PostgresStore(postgres_server.dsn(name))
    try:
        await store.open()
        for i, username in enumerate(["bob", "Carol", "alice", "Dave"]):
            await store.create_user(make_user(f"u{i}", username))
        assert [u.username for u in await store.list_users()] == ["Carol", "Dave", "alice", "bob"]
    finally:
        await store.close()
        await drop_database(postgres_server, postgres_server.dsn(name))


# revocations reach other instances


async def test_another_instance_sees_a_revocation_within_a_second(database: str) -> None:
    """A revocation through one instance (its own pool) moves another's marker within 1 s;
    a rotation moves nothing."""
    ours, theirs = PostgresStore(database), PostgresStore(database)
    await ours.open()
    await theirs.open()
    try:
        for sid in ("a", "b", "c"):
            await ours.create_session(make_session(sid))
        before = ours.revocation_marker()
        await theirs.rotate("a", counter=0, secret_hash=SECRET_HASH, now=NOW + 1, idle_ttl=IDLE_TTL)
        await asyncio.sleep(0.2)
        assert ours.revocation_marker() == before

        await theirs.revoke_session("a", now=NOW + 2, reason="logout")
        await eventually(lambda: ours.revocation_marker() != before, within=MARKER_DEADLINE)
        after_one = ours.revocation_marker()
        await theirs.revoke_user_sessions("u1", now=NOW + 3, reason="logout_all")
        await eventually(
            lambda: ours.revocation_marker() not in (before, after_one), within=MARKER_DEADLINE
        )
    finally:
        await ours.close()
        await theirs.close()


async def test_a_revocation_by_another_program_is_announced(
    store: PostgresStore, raw: asyncpg.Connection[asyncpg.Record]
) -> None:
    """The NOTIFY comes from a trigger: a plain UPDATE by any program announces the sid,
    once it commits, and only then."""
    await store.create_session(make_session())
    heard: asyncio.Queue[str] = asyncio.Queue()
    listener = await asyncpg.connect(store.dsn)
    try:
        await listener.add_listener(REVOCATION_CHANNEL, lambda *args: heard.put_nowait(args[3]))
        before = store.revocation_marker()
        async with raw.transaction():
            await raw.execute("UPDATE sessions SET revoked_at = 1, revoked_reason = 'admin'")
            await asyncio.sleep(0.2)
            assert heard.empty() and store.revocation_marker() == before
        assert await asyncio.wait_for(heard.get(), MARKER_DEADLINE) == "s1"
        await eventually(lambda: store.revocation_marker() != before, within=MARKER_DEADLINE)
        await raw.execute("UPDATE sessions SET revoked_reason = 'again'")  # already revoked
        await asyncio.sleep(0.2)
        assert heard.empty()
    finally:
        await listener.close()


# the purge lock


async def test_one_instance_at_a_time_holds_the_purge_lock(database: str) -> None:
    """try_lock_purge: the first instance gets the lock and keeps it; the others get False
    until it lets go (or closes)."""
    first, second = PostgresStore(database), PostgresStore(database)
    await first.open()
    await second.open()
    try:
        assert await first.try_lock_purge() is True
        assert await second.try_lock_purge() is False
        assert await first.try_lock_purge() is True
        await first.release_purge_lock()
        assert await second.try_lock_purge() is True
        assert await first.try_lock_purge() is False
        await second.close()
        assert await first.try_lock_purge() is True
    finally:
        await first.close()
        await second.close()


# the server goes away and comes back


@pytest.fixture(scope="module")
def own_server() -> Iterator[PostgresServer]:
    """A server of these tests' own, which they stop and start."""
    with PostgresServer() as server:
        yield server


@pytest.mark.parametrize("mode", ["fast", "immediate"])
async def test_a_stopped_server_is_unavailable_then_the_store_recovers(
    own_server: PostgresServer, mode: str
) -> None:
    """While the server is down every call raises StoreUnavailable promptly and the marker
    is readable; when it is back the same store works again and its listener reconnects."""
    dsn = await create_database(own_server)
    store = PostgresStore(dsn, pool_min=2)
    other = PostgresStore(dsn)
    await store.open()
    try:
        await store.create_session(make_session())
        await store.create_session(make_session("s2"))
        own_server.stop(mode=mode)
        try:
            for call in (
                lambda: rotate_s1(store),
                lambda: store.get_session("s1"),
                lambda: store.revoke_session("s1", now=NOW, reason="logout"),
                lambda: store.try_lock_purge(),
            ):
                started = time.monotonic()
                with pytest.raises(StoreUnavailable):
                    await call()
                assert time.monotonic() - started < 2.0
            marker_while_down = store.revocation_marker()
        finally:
            own_server.start()

        # No reopening: the pool replaces its lost connections on use.
        session = await store.get_session("s1")
        assert session is not None and session.counter == 0
        assert await rotate_s1(store) is not None
        # The listener reconnects by itself, and says so (it may have missed revocations).
        await eventually(lambda: store.revocation_marker() != marker_while_down, within=5)
        await other.open()
        before = store.revocation_marker()
        await other.revoke_session("s2", now=NOW + 5, reason="admin")
        await eventually(lambda: store.revocation_marker() != before, within=MARKER_DEADLINE)
    finally:
        await store.close()
        await other.close()
        await drop_database(own_server, dsn)
