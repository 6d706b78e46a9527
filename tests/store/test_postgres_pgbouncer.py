"""keyfob through PgBouncer in transaction pooling mode (Debian's pgbouncer 1.18).

The pooled statements go through PgBouncer (``statement_cache_size=0``: PgBouncer before
1.21 cannot keep a prepared statement across transactions, which land on any server
connection); what needs a session of its own, the revocation listener and the purge lock,
goes straight to PostgreSQL through ``session_url``. PgBouncer has three server
connections for everybody, so the clients' transactions really do share them.
"""

from __future__ import annotations

import asyncio
import urllib.parse
from collections.abc import Iterator

import pytest

from keyfob import SessionManager
from keyfob.exceptions import ConfigurationError, SessionRevoked
from keyfob.settings import Settings
from keyfob.store.postgres import PostgresStore
from keyfob.testing import FAST_SETTINGS, FrozenClock
from tests.services import PostgresServer

from .pgbouncer import PgBouncer
from .test_postgres_store import MARKER_DEADLINE, empty_database, eventually

pytestmark = pytest.mark.postgres

PASSWORD = "correct horse battery staple"


@pytest.fixture(scope="module")
def pgbouncer(postgres_server: PostgresServer) -> Iterator[PgBouncer]:
    with PgBouncer(postgres_server) as bouncer:
        yield bouncer


@pytest.fixture
async def database(postgres_server: PostgresServer) -> str:
    return await empty_database(postgres_server, "keyfob_pgbouncer")


def store_url(pgbouncer: PgBouncer, direct: str) -> str:
    name = urllib.parse.urlsplit(direct).path.lstrip("/")
    session = urllib.parse.quote(direct, safe="")
    return f"{pgbouncer.dsn(name)}?statement_cache_size=0&pool_max=8&session_url={session}"


def test_the_session_url_is_read_from_the_store_url(pgbouncer: PgBouncer) -> None:
    store = PostgresStore.from_url(store_url(pgbouncer, "postgresql://kf:pw@db:5432/auth"))
    assert store.session_dsn == "postgresql://kf:pw@db:5432/auth"
    assert store.dsn == pgbouncer.dsn("auth")
    assert store.statement_cache_size == 0


async def test_sessions_work_through_pgbouncer_in_transaction_mode(
    pgbouncer: PgBouncer, database: str
) -> None:
    """Login, refresh (one after another and many at once), revocation seen by another
    instance, and purge, with the pooled statements through PgBouncer."""
    clock = FrozenClock()
    url = store_url(pgbouncer, database)
    ours, theirs = PostgresStore.from_url(url), PostgresStore.from_url(url)
    async with (
        SessionManager(FAST_SETTINGS, ours, clock=clock) as one,
        SessionManager(FAST_SETTINGS, theirs, clock=clock) as other,
    ):
        await one.register("alice", PASSWORD)
        pair = await one.login("alice", PASSWORD)
        for _ in range(3):
            pair = await one.refresh(pair.refresh_token)

        # Many sessions refreshing at once, over more client connections than PgBouncer
        # has server connections.
        pairs = [await other.login("alice", PASSWORD) for _ in range(12)]
        for _ in range(3):
            pairs = await asyncio.gather(*(one.refresh(p.refresh_token) for p in pairs))
        assert {p.session.counter for p in pairs} == {3}

        # A revocation through one instance reaches the other's listener (on session_url).
        before = ours.revocation_marker()
        await other.revoke_session(pair.session.sid)
        await eventually(lambda: ours.revocation_marker() != before, within=MARKER_DEADLINE)
        with pytest.raises(SessionRevoked):
            await one.refresh(pair.refresh_token)

        # Purge: one instance at a time holds the lock (a session advisory lock, direct).
        assert await ours.try_lock_purge()
        assert not await theirs.try_lock_purge()
        clock.advance(FAST_SETTINGS.absolute_ttl + FAST_SETTINGS.idle_ttl + 1)
        assert await one.purge() == 13
        await ours.release_purge_lock()
        assert await theirs.try_lock_purge()


def test_a_session_url_that_is_not_postgresql_is_refused() -> None:
    with pytest.raises(ConfigurationError, match="session_url"):
        PostgresStore.from_url("postgresql://db/auth?session_url=sqlite%3A%2F%2F%2Fkeyfob.db")


def test_the_session_url_can_come_from_the_settings(pgbouncer: PgBouncer) -> None:
    """KEYFOB_STORE_SESSION_URL, for when the store URL is shared with other tools; a
    session_url in the store URL wins over it."""
    settings = Settings.from_env(
        environ={"KEYFOB_STORE_SESSION_URL": "postgresql://kf@db:5432/auth"}
    )
    store = PostgresStore.from_url(pgbouncer.dsn("auth"), settings=settings)
    assert store.session_dsn == "postgresql://kf@db:5432/auth"
    in_url = PostgresStore.from_url(
        store_url(pgbouncer, "postgresql://kf@other:5432/auth"), settings=settings
    )
    assert in_url.session_dsn == "postgresql://kf@other:5432/auth"
    with pytest.raises(ConfigurationError, match="session_url"):
        PostgresStore.from_url(
            pgbouncer.dsn("auth"), settings=settings.replace(store_session_url="redis://r")
        )
