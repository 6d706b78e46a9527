"""The SQLite store: the conformance suite, and what only SQLite has (URLs, pragmas, locks)."""

from __future__ import annotations

import asyncio
import functools
import gc
import sqlite3
import threading
import time
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import pytest

from keyfob.core.models import EventKind, SecurityEvent, Session
from keyfob.exceptions import ConfigurationError, StoreIntegrityError, StoreUnavailable
from keyfob.settings import Settings
from keyfob.store import open_store
from keyfob.store.migrations import load_migrations
from keyfob.store.protocol import Store
from keyfob.store.sqlite import SQLiteStore

from ._workers import WorkerPool
from .contract import (
    IDLE_TTL,
    NOW,
    SECRET_HASH,
    RawSQL,
    StoreContract,
    StoreFactory,
    make_session,
)

MIGRATIONS = [m.name for m in load_migrations("sqlite")]


@pytest.fixture
def db_path(tmp_path: Path) -> Path:
    return tmp_path / "keyfob.db"


class TestSQLiteStore(StoreContract):
    supports_multiprocess = True
    supports_sql = True
    migrations = MIGRATIONS
    unusable_urls = (
        "sqlite:///:memory:",
        "sqlite://",
        "sqlite:///",
        "sqlite://host/keyfob.db",
        "sqlite:///keyfob.db?mode=ro",
        "sqlite:///file:keyfob.db",
        "postgresql://localhost/keyfob",
    )
    schema_query = "SELECT name FROM sqlite_master"
    schema_objects = frozenset(
        {
            "sessions",
            "users",
            "events",
            "signing_keys",
            "revocation_epoch",
            "keyfob_migrations",
            "sessions_by_user",
            "sessions_by_revoked_at",
            "sessions_by_expiry",
            "events_by_user",
            "events_by_sid",
            "events_by_kind",
            "sessions_revoked",
        }
    )
    refuse_key_k2 = (
        "CREATE TRIGGER refuse_k2 BEFORE INSERT ON signing_keys WHEN NEW.kid = 'k2' "
        "BEGIN SELECT RAISE(ABORT, 'refused by test'); END"
    )

    @pytest.fixture
    def store_factory(self, db_path: Path) -> StoreFactory:
        return functools.partial(SQLiteStore, db_path)

    @pytest.fixture
    def write_delays(self, db_path: Path) -> list[tuple[Store, float]]:
        # busy_timeout for the write lock, again for a write of a failed group, and a
        # second for the commit.
        return [
            (SQLiteStore(db_path), 11.0),
            (SQLiteStore(db_path, busy_timeout=0), 1.0),
            (SQLiteStore(db_path, busy_timeout=2.5), 6.0),
        ]

    @pytest.fixture
    def raw_sql(self, raw: sqlite3.Connection) -> RawSQL:
        async def run(statement: str) -> list[tuple[Any, ...]]:
            return raw.execute(statement).fetchall()

        return run


@pytest.fixture
async def store(db_path: Path) -> AsyncIterator[SQLiteStore]:
    store = SQLiteStore(db_path, busy_timeout=0.2)
    await store.open()
    try:
        yield store
    finally:
        await store.close()


@pytest.fixture
def raw(db_path: Path) -> Iterator[sqlite3.Connection]:
    """A plain connection to the store's file, as another program would have."""
    conn = sqlite3.connect(db_path, isolation_level=None)
    try:
        yield conn
    finally:
        conn.close()


async def pragma(store: SQLiteStore, name: str) -> Any:
    """Read a pragma on the store's own connection (pragmas are per connection)."""
    rows = await store._db.run(lambda conn: conn.execute(f"PRAGMA {name}").fetchall())
    return rows[0][0]


# URLs


@pytest.mark.parametrize(
    ("url", "path"),
    [
        ("sqlite:///keyfob.db", Path("keyfob.db")),
        ("sqlite:///data/keyfob.db", Path("data/keyfob.db")),
        ("sqlite:////var/lib/keyfob/keyfob.db", Path("/var/lib/keyfob/keyfob.db")),
    ],
)
def test_url_names_a_relative_or_absolute_file(url: str, path: Path) -> None:
    """Three slashes give a relative path, four an absolute one."""
    assert SQLiteStore.from_url(url).path == path


def test_synchronous_comes_from_settings() -> None:
    """from_url takes synchronous from the settings, FULL when there are none."""
    assert SQLiteStore.from_url("sqlite:///k.db").synchronous == "full"
    normal = Settings(sqlite_synchronous="normal")
    assert SQLiteStore.from_url("sqlite:///k.db", settings=normal).synchronous == "normal"


def test_open_store_picks_sqlite(db_path: Path) -> None:
    """open_store() serves sqlite:/// URLs with the SQLite store."""
    store = open_store(f"sqlite:///{db_path}")
    assert isinstance(store, SQLiteStore)
    assert store.path == db_path
    assert repr(store) == f"SQLiteStore({str(db_path)!r})"


def test_bad_constructor_arguments_are_refused(db_path: Path) -> None:
    """An unknown synchronous mode or a negative busy timeout is a ConfigurationError."""
    with pytest.raises(ConfigurationError):
        SQLiteStore(db_path, synchronous="off")  # type: ignore[arg-type]
    with pytest.raises(ConfigurationError):
        SQLiteStore(db_path, busy_timeout=-1)


# connection settings and schema


@pytest.mark.parametrize(("synchronous", "level"), [("full", 2), ("normal", 1)])
async def test_connection_pragmas(db_path: Path, synchronous: Any, level: int) -> None:
    """The store's connection runs in WAL with the chosen synchronous, foreign keys on."""
    store = SQLiteStore(db_path, synchronous=synchronous, busy_timeout=1.5)
    await store.open()
    try:
        assert await pragma(store, "journal_mode") == "wal"
        assert await pragma(store, "synchronous") == level
        assert await pragma(store, "foreign_keys") == 1
        assert await pragma(store, "busy_timeout") == 1500
    finally:
        await store.close()


async def test_open_leaves_the_file_in_wal_mode(
    store: SQLiteStore, raw: sqlite3.Connection
) -> None:
    """After open() every connection to the file, another program's too, finds it in WAL."""
    assert raw.execute("PRAGMA journal_mode").fetchall() == [("wal",)]


async def test_open_creates_missing_directories(tmp_path: Path) -> None:
    """The database's directory is created on open, as `keyfob serve` needs no setup."""
    store = SQLiteStore(tmp_path / "a" / "b" / "keyfob.db")
    await store.open()
    await store.close()
    assert (tmp_path / "a" / "b" / "keyfob.db").is_file()


async def test_processes_opening_fresh_files_switch_each_to_wal_once(tmp_path: Path) -> None:
    """Processes opening fresh files at once: each file is switched to WAL and migrated once."""
    unused = functools.partial(SQLiteStore, tmp_path / "0.db")
    with WorkerPool(unused, 3, open_store=False) as pool:
        # Switching a new file to WAL under contention is the racy part.
        for i in range(1, 20):
            fresh = functools.partial(SQLiteStore, tmp_path / f"{i}.db")
            applied = pool.race_all(("migrate_new", fresh))
            assert sorted(applied, key=repr) == [MIGRATIONS, [], []], applied


# errors become StoreUnavailable (or StoreIntegrityError), nothing half-done


async def test_a_held_write_lock_surfaces_as_store_unavailable(
    store: SQLiteStore, raw: sqlite3.Connection
) -> None:
    """A rotation that cannot get the write lock within busy_timeout raises StoreUnavailable."""
    await store.create_session(make_session())
    raw.execute("BEGIN EXCLUSIVE")
    raw.execute("UPDATE sessions SET scope = scope")
    try:
        with pytest.raises(StoreUnavailable, match="locked"):
            await store.rotate(
                "s1", counter=0, secret_hash=SECRET_HASH, now=NOW + 1, idle_ttl=IDLE_TTL
            )
        with pytest.raises(StoreUnavailable):
            await store.revoke_user_sessions("u1", now=NOW + 1, reason="logout_all")
        # WAL: readers do not wait for the writer, and see the last committed state.
        assert await store.get_session("s1") == make_session()
    finally:
        raw.execute("ROLLBACK")
    assert await store.get_session("s1") == make_session()
    rotated = await store.rotate(
        "s1", counter=0, secret_hash=SECRET_HASH, now=NOW + 1, idle_ttl=IDLE_TTL
    )
    assert rotated is not None and rotated.counter == 1


async def test_a_write_held_up_by_a_lock_ends_within_max_write_delay(
    store: SQLiteStore, raw: sqlite3.Connection
) -> None:
    """A revocation that cannot get the write lock gives up within max_write_delay."""
    await store.create_session(make_session())
    raw.execute("BEGIN EXCLUSIVE")
    try:
        started = time.monotonic()
        with pytest.raises(StoreUnavailable):
            await store.revoke_session("s1", now=NOW + 1, reason="logout")
        assert time.monotonic() - started < store.max_write_delay
    finally:
        raw.execute("ROLLBACK")


async def test_waiting_for_a_lock_does_not_block_the_event_loop(
    db_path: Path, raw: sqlite3.Connection
) -> None:
    """While the store waits for another connection's lock, other coroutines keep running."""
    store = SQLiteStore(db_path, busy_timeout=0.5)
    await store.open()
    try:
        await store.create_session(make_session())
        raw.execute("BEGIN EXCLUSIVE")
        raw.execute("UPDATE sessions SET scope = scope")
        ticks = 0

        async def tick() -> None:
            nonlocal ticks
            while True:
                await asyncio.sleep(0.01)
                ticks += 1

        ticker = asyncio.create_task(tick())
        try:
            with pytest.raises(StoreUnavailable):
                await store.rotate(
                    "s1", counter=0, secret_hash=SECRET_HASH, now=NOW + 1, idle_ttl=IDLE_TTL
                )
        finally:
            ticker.cancel()
            raw.execute("ROLLBACK")
        assert ticks >= 10
    finally:
        await store.close()


async def test_a_group_runs_its_statements_on_the_loop_and_commits_on_the_thread(
    store: SQLiteStore,
) -> None:
    """The statements of a group cost no hand-over to the thread; only COMMIT goes there."""
    await store.create_session(make_session())
    where: list[tuple[str, bool]] = []
    loop_thread = threading.get_ident()

    def record(statement: str) -> None:
        if not statement.startswith("PRAGMA"):
            where.append((statement.split()[0], threading.get_ident() == loop_thread))

    await store._db.run(lambda conn: conn.set_trace_callback(record))
    rotated = await store.rotate(
        "s1", counter=0, secret_hash=SECRET_HASH, now=NOW + 1, idle_ttl=IDLE_TTL
    )
    await store._db.run(lambda conn: conn.set_trace_callback(None))
    assert rotated is not None
    assert where == [("BEGIN", True), ("UPDATE", True), ("SELECT", True), ("COMMIT", False)]


async def test_a_group_waits_for_a_lock_on_the_thread_and_then_commits(
    db_path: Path, raw: sqlite3.Connection
) -> None:
    """The write lock is taken: the group waits for it (not on the loop) and commits once free."""
    store = SQLiteStore(db_path, busy_timeout=5)
    await store.open()
    try:
        await store.create_session(make_session())
        raw.execute("BEGIN IMMEDIATE")
        rotation = rotate(store, "s1")
        await asyncio.sleep(0.2)
        assert not rotation.done()
        raw.execute("COMMIT")
        rotated = await asyncio.wait_for(rotation, 5)
        assert rotated is not None and rotated.counter == 1
        # The loop's connection asks without waiting; the lock wait is back to busy_timeout.
        assert await pragma(store, "busy_timeout") == 5000
    finally:
        await store.close()


def test_a_store_serves_one_event_loop_after_another(db_path: Path) -> None:
    """As the CLI uses it: open in one asyncio.run(), write and read in the next ones."""
    store = SQLiteStore(db_path)
    asyncio.run(store.open())
    asyncio.run(store.create_session(make_session()))
    rotated = asyncio.run(
        store.rotate("s1", counter=0, secret_hash=SECRET_HASH, now=NOW + 1, idle_ttl=IDLE_TTL)
    )
    assert rotated is not None and rotated.counter == 1
    assert asyncio.run(store.get_session("s1")) == rotated
    asyncio.run(store.close())


async def test_a_closed_store_has_no_revocation_marker(db_path: Path) -> None:
    """Once closed, the store's revocation_marker() is None (it reads nothing)."""
    store = SQLiteStore(db_path)
    await store.open()
    await store.close()
    assert store.revocation_marker() is None


@pytest.fixture
def not_a_database(tmp_path: Path) -> Path:
    path = tmp_path / "notes.txt"
    path.write_bytes(b"this is not an SQLite database, it is a text file. " * 100)
    return path


async def test_a_file_that_is_not_a_database_is_an_integrity_error(not_a_database: Path) -> None:
    """Opening a file that is not an SQLite database raises StoreIntegrityError."""
    store = SQLiteStore(not_a_database)
    with pytest.raises(StoreIntegrityError):
        await store.open()
    await store.close()


async def test_an_unopenable_path_is_unavailable(tmp_path: Path) -> None:
    """A path that cannot be opened as a file raises StoreUnavailable."""
    store = SQLiteStore(tmp_path)
    with pytest.raises(StoreUnavailable):
        await store.open()
    await store.close()


# revocation marker


async def test_revocation_marker_counts_revocations(store: SQLiteStore) -> None:
    """The marker counts revocations in the database and ignores rotations."""
    await store.create_session(make_session("a"))
    await store.create_session(make_session("b"))
    start = store.revocation_marker()
    await store.rotate("a", counter=0, secret_hash=SECRET_HASH, now=NOW + 1, idle_ttl=IDLE_TTL)
    assert store.revocation_marker() == start
    await store.revoke_session("a", now=NOW + 2, reason="logout")
    await store.revoke_session("a", now=NOW + 3, reason="logout")  # already revoked
    assert store.revocation_marker() == 1
    await store.create_session(make_session("c", revoked_at=NOW, revoked_reason="admin"))
    assert store.revocation_marker() == 2


async def test_rotate_is_one_update_and_one_read_in_a_transaction(store: SQLiteStore) -> None:
    """A successful rotation: the conditional UPDATE, then the row by its primary key."""
    await store.create_session(make_session())
    statements: list[str] = []
    await store._db.run(lambda conn: conn.set_trace_callback(statements.append))
    rotated = await store.rotate(
        "s1", counter=0, secret_hash=SECRET_HASH, now=NOW + 1, idle_ttl=IDLE_TTL
    )
    await store._db.run(lambda conn: conn.set_trace_callback(None))
    assert rotated is not None
    # Triggers show up in the trace as "-- TRIGGER name"; a rotation fires none. The
    # PRAGMAs around BEGIN are how the event loop asks for the write lock without waiting.
    work = [s for s in statements if not s.startswith("PRAGMA busy_timeout")]
    assert len(work) == 4, work
    assert work[0] == "BEGIN IMMEDIATE"
    assert work[1].startswith("UPDATE sessions SET counter = counter + 1")
    assert work[2].startswith("SELECT sid, user_id") and work[2].endswith("WHERE sid = 's1'")
    assert work[3] == "COMMIT"


# the store's thread


def store_threads() -> list[threading.Thread]:
    return [t for t in threading.enumerate() if t.name.startswith("keyfob-sqlite")]


async def test_each_store_has_one_thread_that_ends_on_close(db_path: Path) -> None:
    """An open store runs exactly one thread of its own, and close() ends it."""
    before = set(store_threads())
    store = SQLiteStore(db_path)
    await store.open()
    await asyncio.gather(*(store.count_sessions() for _ in range(20)))
    mine = set(store_threads()) - before
    assert len(mine) == 1
    await store.close()
    (thread,) = mine
    await asyncio.to_thread(thread.join, 5)
    assert not thread.is_alive()


async def ends_once_collected(thread: threading.Thread) -> bool:
    """Whether ``thread`` ends within 5 s of garbage collection.

    Collected more than once: the thread may still be finishing its last job (which
    holds the store) just after handing the result over, when the first collection runs.
    """
    for _ in range(50):
        gc.collect()
        await asyncio.to_thread(thread.join, 0.1)
        if not thread.is_alive():
            return True
    return False


# Python 3.13+ warns about a connection closed by the garbage collector: that is the point.
@pytest.mark.filterwarnings("ignore::ResourceWarning")
async def test_a_store_nobody_closed_lets_its_thread_end(db_path: Path) -> None:
    """A store dropped without close() does not leave its thread behind."""
    before = set(store_threads())
    store = SQLiteStore(db_path)
    await store.open()
    (thread,) = set(store_threads()) - before
    del store
    assert await ends_once_collected(thread)


# group commit: single-statement writes waiting for the connection share one transaction


class _Gate:
    """Keeps the store's connection busy until opened, so that calls wait for it."""

    def __init__(self, store: SQLiteStore) -> None:
        self.store = store
        self.event = threading.Event()
        self.job: asyncio.Future[bool] | None = None

    async def __aenter__(self) -> _Gate:
        self.job = asyncio.ensure_future(self.store._db.run(lambda conn: self.event.wait(10)))
        await asyncio.sleep(0)
        return self

    async def queued(self, count: int) -> None:
        """Wait until ``count`` calls wait behind the gate."""
        runner = self.store._db._runner
        assert runner is not None
        for _ in range(1000):
            if runner.waiting() >= count:
                return
            await asyncio.sleep(0)
        raise AssertionError(f"only {runner.waiting()} calls were waiting, not {count}")

    async def __aexit__(self, *exc_info: object) -> None:
        self.event.set()
        assert self.job is not None
        assert await self.job


def rotate(store: SQLiteStore, sid: str, counter: int = 0) -> asyncio.Future[Any]:
    return asyncio.ensure_future(
        store.rotate(sid, counter=counter, secret_hash=SECRET_HASH, now=NOW + 1, idle_ttl=IDLE_TTL)
    )


async def trace(store: SQLiteStore, statements: list[str] | None) -> None:
    """Record the statements the store runs; not the PRAGMAs with which the event loop
    asks for the write lock without waiting (they wrap each group's BEGIN)."""

    def record(statement: str) -> None:
        assert statements is not None
        if not statement.startswith("PRAGMA busy_timeout"):
            statements.append(statement)

    callback = None if statements is None else record
    await store._db.run(lambda conn: conn.set_trace_callback(callback))


def transactions(statements: list[str]) -> int:
    """Transactions in a trace: each BEGIN … COMMIT, and each statement outside one."""
    count, inside = 0, False
    for statement in statements:
        if statement.startswith("--"):
            continue  # a trigger
        if statement == "BEGIN IMMEDIATE":
            inside = True
            count += 1
        elif statement in ("COMMIT", "ROLLBACK"):
            inside = False
        elif not inside:
            count += 1
    return count


async def test_queued_rotations_are_committed_together(store: SQLiteStore) -> None:
    """Rotations of different sessions waiting in the queue share one BEGIN … COMMIT."""
    sids = [f"s{i}" for i in range(10)]
    for sid in sids:
        await store.create_session(make_session(sid))
    statements: list[str] = []
    await trace(store, statements)
    async with _Gate(store) as gate:
        rotations = [rotate(store, sid) for sid in sids]
        await gate.queued(len(sids))
    results = await asyncio.gather(*rotations)
    await trace(store, None)
    # Each caller gets its own session, rotated.
    assert [(s.sid, s.counter, s.rotated_at) for s in results] == [
        (sid, 1, pytest.approx(NOW + 1, abs=1.0)) for sid in sids
    ]
    assert statements[0] == "BEGIN IMMEDIATE"
    assert statements[-1] == "COMMIT"
    assert sum(s.startswith("UPDATE sessions") for s in statements) == len(sids)
    assert transactions(statements) == 1
    for sid in sids:
        assert (await store.get_session(sid)) == results[sids.index(sid)]


async def test_many_concurrent_rotations_need_fewer_transactions(store: SQLiteStore) -> None:
    """Without any gate, concurrent rotations on an idle store still share transactions."""
    sids = [f"s{i}" for i in range(200)]
    for sid in sids:
        await store.create_session(make_session(sid))
    statements: list[str] = []
    await trace(store, statements)
    results = await asyncio.gather(*(rotate(store, sid) for sid in sids))
    await trace(store, None)
    assert [(s.sid, s.counter) for s in results] == [(sid, 1) for sid in sids]
    assert sum(s.startswith("UPDATE sessions") for s in statements) == len(sids)
    # At most 64 to a group: at least four transactions; far fewer than 200.
    assert 200 // 64 < transactions(statements) < len(sids) // 2


async def test_a_group_keeps_exactly_one_winner(store: SQLiteStore) -> None:
    """Two rotations of one counter in one group: the first wins, the second gets None."""
    await store.create_session(make_session("s1"))
    statements: list[str] = []
    await trace(store, statements)
    async with _Gate(store) as gate:
        first, second, next_one = rotate(store, "s1"), rotate(store, "s1"), rotate(store, "s1", 1)
        await gate.queued(3)
    await trace(store, None)
    assert transactions(statements) == 1
    won = await first
    assert won is not None and won.counter == 1
    assert await second is None
    # Inside the group the third sees the first's rotation, as it would after it.
    later = await next_one
    assert later is not None and later.counter == 2
    assert await store.get_session("s1") == later


async def test_a_group_never_exceeds_its_cap(store: SQLiteStore) -> None:
    """More queued rotations than a group holds are committed in several groups."""
    sids = [f"s{i}" for i in range(100)]
    for sid in sids:
        await store.create_session(make_session(sid))
    statements: list[str] = []
    await trace(store, statements)
    async with _Gate(store) as gate:
        rotations = [rotate(store, sid) for sid in sids]
        await gate.queued(len(sids))
    assert all(s is not None for s in await asyncio.gather(*rotations))
    await trace(store, None)
    assert transactions(statements) == 2
    assert statements.count("COMMIT") == 2


async def test_a_group_keeps_the_order_of_other_jobs(store: SQLiteStore) -> None:
    """A read queued between writes runs after the writes before it, before those after."""
    await store.create_session(make_session("s1"))
    await store.create_session(make_session("s2"))
    async with _Gate(store) as gate:
        first = rotate(store, "s1")
        read = asyncio.ensure_future(store.get_session("s1"))
        second = rotate(store, "s2")
        read_again = asyncio.ensure_future(store.get_session("s2"))
        await gate.queued(4)
    assert (await read) == (await first)
    assert (await read_again) == (await second)


async def test_a_failing_statement_does_not_fail_the_rest_of_its_group(
    store: SQLiteStore, raw: sqlite3.Connection
) -> None:
    """One statement of a group fails: the others commit, and only its caller hears of it."""
    for sid in ("a", "bad", "c"):
        await store.create_session(make_session(sid))
    raw.execute(
        "CREATE TRIGGER refuse_bad BEFORE UPDATE ON sessions WHEN OLD.sid = 'bad' "
        "BEGIN SELECT RAISE(ABORT, 'refused by test'); END"
    )
    statements: list[str] = []
    await trace(store, statements)
    async with _Gate(store) as gate:
        rotations = [rotate(store, sid) for sid in ("a", "bad", "c")]
        await gate.queued(3)
    a, bad, c = await asyncio.gather(*rotations, return_exceptions=True)
    await trace(store, None)
    # The group was tried, rolled back, and its jobs run again one by one.
    # (The trace may show a statement twice: the new trigger makes SQLite prepare it again.)
    assert statements[0] == "BEGIN IMMEDIATE"
    first_rollback = statements.index("ROLLBACK")
    assert "COMMIT" not in statements[:first_rollback]
    # Then each in a transaction of its own: two commit, the bad one rolls back.
    after = statements[first_rollback + 1 :]
    assert after.count("BEGIN IMMEDIATE") == 3
    assert after.count("COMMIT") == 2
    assert after.count("ROLLBACK") == 1
    assert sum(s.startswith("UPDATE sessions") for s in after) >= 3
    assert isinstance(bad, StoreIntegrityError)
    assert isinstance(a, Session) and a.counter == 1
    assert isinstance(c, Session) and c.counter == 1
    assert (await store.get_session("bad")) == make_session("bad")
    assert (await store.get_session("a")) == a


async def test_a_group_that_cannot_begin_fails_every_caller(
    store: SQLiteStore, raw: sqlite3.Connection
) -> None:
    """Another connection holds the write lock past busy_timeout: all get StoreUnavailable."""
    sids = [f"s{i}" for i in range(5)]
    for sid in sids:
        await store.create_session(make_session(sid))
    raw.execute("BEGIN EXCLUSIVE")
    raw.execute("UPDATE sessions SET scope = scope")
    try:
        async with _Gate(store) as gate:
            rotations = [rotate(store, sid) for sid in sids]
            await gate.queued(len(sids))
        outcomes = await asyncio.gather(*rotations, return_exceptions=True)
    finally:
        raw.execute("ROLLBACK")
    assert all(isinstance(o, StoreUnavailable) for o in outcomes), outcomes
    assert len({id(o) for o in outcomes}) == len(sids)  # each caller its own exception
    for sid in sids:
        assert await store.get_session(sid) == make_session(sid)


async def test_a_group_whose_commit_fails_changes_nothing(store: SQLiteStore) -> None:
    """COMMIT fails after every statement ran: all get StoreUnavailable, all rolled back."""
    sids = [f"s{i}" for i in range(5)]
    for sid in sids:
        await store.create_session(make_session(sid))

    def refuse_commit(action: int, arg1: str | None, *_: object) -> int:
        if action == sqlite3.SQLITE_TRANSACTION and arg1 == "COMMIT":
            return sqlite3.SQLITE_DENY
        return sqlite3.SQLITE_OK

    statements: list[str] = []
    await store._db.run(lambda conn: conn.set_authorizer(refuse_commit))
    await trace(store, statements)
    try:
        async with _Gate(store) as gate:
            rotations = [rotate(store, sid) for sid in sids]
            await gate.queued(len(sids))
        outcomes = await asyncio.gather(*rotations, return_exceptions=True)
    finally:
        await trace(store, None)
        await store._db.run(lambda conn: conn.set_authorizer(None))
    assert all(isinstance(o, StoreUnavailable) for o in outcomes), outcomes
    # The statements did run; the rollback undid them.
    assert sum(s.startswith("UPDATE sessions") for s in statements) == len(sids)
    assert "ROLLBACK" in statements
    for sid in sids:
        assert await store.get_session(sid) == make_session(sid)
    assert await store._db.run(lambda conn: conn.in_transaction) is False
    # And the store goes on working.
    rotated = await rotate(store, "s0")
    assert rotated is not None and rotated.counter == 1


async def test_other_single_statement_writes_join_a_group(store: SQLiteStore) -> None:
    """New sessions, events and revocations of one session are committed together too."""
    await store.create_session(make_session("s1"))
    statements: list[str] = []
    await trace(store, statements)
    async with _Gate(store) as gate:
        jobs = [
            asyncio.ensure_future(store.create_session(make_session("s2"))),
            asyncio.ensure_future(
                store.record_event(SecurityEvent(kind=EventKind.LOGIN_OK, at=NOW, user_id="u1"))
            ),
            asyncio.ensure_future(store.revoke_session("s1", now=NOW + 1, reason="logout")),
        ]
        await gate.queued(3)
    _, _, revoked = await asyncio.gather(*jobs)
    await trace(store, None)
    assert transactions(statements) == 1
    assert revoked is not None and revoked.revoked_reason == "logout"
    assert await store.get_session("s2") == make_session("s2")
    assert [e.kind for e in await store.list_events()] == [EventKind.LOGIN_OK]


# Python 3.13+ warns about a connection closed by the garbage collector: that is the point.
@pytest.mark.filterwarnings("ignore::ResourceWarning")
async def test_a_store_nobody_closed_lets_its_thread_end_after_a_group(db_path: Path) -> None:
    """The thread keeps no job of a group (nor one set aside while forming it) alive."""
    before = set(store_threads())
    store = SQLiteStore(db_path)
    await store.open()
    (thread,) = set(store_threads()) - before
    await store.create_session(make_session("s1"))
    async with _Gate(store) as gate:
        # The read cannot join the rotation's group: it is set aside, then run.
        jobs = [rotate(store, "s1"), asyncio.ensure_future(store.get_session("s1"))]
        await gate.queued(2)
    rotated, read = await asyncio.gather(*jobs)
    assert rotated == read
    del store, gate, jobs
    assert await ends_once_collected(thread)


async def test_a_rotation_held_up_by_a_lock_is_stamped_when_it_applied(
    db_path: Path, raw: sqlite3.Connection
) -> None:
    """A rotation that waited for the write lock opens its grace window when it applied, not
    when it was asked for: a retry after a slow answer is then not mistaken for reuse."""
    store = SQLiteStore(db_path, busy_timeout=5.0)
    await store.open()
    try:
        await store.create_session(make_session())
        raw.execute("BEGIN IMMEDIATE")
        asyncio.get_running_loop().call_later(1.0, raw.execute, "ROLLBACK")
        rotated = await store.rotate(
            "s1", counter=0, secret_hash=SECRET_HASH, now=NOW + 1, idle_ttl=IDLE_TTL
        )
        assert rotated is not None and rotated.rotated_at is not None
        assert NOW + 1 + 0.8 <= rotated.rotated_at < NOW + 1 + 5.0
        assert rotated.last_used_at == pytest.approx(rotated.rotated_at, abs=1e-3)
    finally:
        await store.close()
