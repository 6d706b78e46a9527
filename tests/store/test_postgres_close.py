"""``PostgresStore.close()`` ends its revocation listener whatever the server does.

The listener's connection goes through a :class:`~tests.relay.PausableRelay` (the store's
``session_dsn``), and the relay is paused: a server that stopped answering without closing
anything. Whatever the listener is doing then (idle, pinging, reconnecting), ``close()``
must return within a bound and leave no task and no connection behind.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
import urllib.parse
from collections.abc import Iterator

import asyncpg
import pytest

from keyfob.store.postgres import PostgresStore
from tests.services import PostgresServer

from ..relay import PausableRelay
from .test_postgres_store import empty_database, until

pytestmark = pytest.mark.postgres

CONNECT_TIMEOUT = 0.5
#: close() may wait for the listener's connection (connect_timeout), then the pool's.
CLOSE_BOUND = 4 * CONNECT_TIMEOUT + 1.0


@pytest.fixture
async def database(postgres_server: PostgresServer) -> str:
    return await empty_database(postgres_server, "keyfob_close")


@pytest.fixture
def relay(database: str) -> Iterator[PausableRelay]:
    parsed = urllib.parse.urlsplit(database)
    with PausableRelay(parsed.hostname or "127.0.0.1", parsed.port or 5432) as relay:
        yield relay


def through(database: str, relay: PausableRelay) -> str:
    parsed = urllib.parse.urlsplit(database)
    return parsed._replace(netloc=f"{parsed.username}@127.0.0.1:{relay.port}").geturl()


def leftover_tasks() -> list[asyncio.Task[object]]:
    return [t for t in asyncio.all_tasks() if t is not asyncio.current_task() and not t.done()]


async def backends(database: str, application: str) -> int:
    conn = await asyncpg.connect(database)
    try:
        count = await conn.fetchval(
            "SELECT count(*) FROM pg_stat_activity WHERE application_name = $1", application
        )
        assert isinstance(count, int)
        return count
    finally:
        await conn.close()


async def assert_closes_in_time(store: PostgresStore) -> None:
    started = time.monotonic()
    await asyncio.wait_for(store.close(), timeout=CLOSE_BOUND + 5)
    assert time.monotonic() - started < CLOSE_BOUND
    assert leftover_tasks() == []


@pytest.mark.parametrize("doing", ["idle", "pinging", "reconnecting", "just_lost"])
async def test_close_ends_the_listener_under_a_hung_server(
    database: str, relay: PausableRelay, doing: str
) -> None:
    """``just_lost``: closed the instant the listener lost its connection, as it starts
    reconnecting: its cancellation used to get lost there, and close() waited for the next
    keepalive ping. The others: closed while the relay holds everything."""
    store = PostgresStore(
        database + "?application_name=keyfob_close_test",
        session_dsn=through(database, relay) + "?application_name=keyfob_close_test",
        connect_timeout=CONNECT_TIMEOUT,
        listener_keepalive=0.2 if doing == "pinging" else 30,
    )
    await store.open()
    try:
        if doing in ("reconnecting", "just_lost"):
            # Lose the listener's connection, then close while it reconnects (or tries to,
            # through the paused relay).
            listening = store._listener._conn
            assert listening is not None
            with contextlib.suppress(asyncpg.PostgresError, asyncpg.InterfaceError):
                await listening.execute("SELECT pg_terminate_backend(pg_backend_pid())")
        if doing != "just_lost":
            relay.pause()
            await asyncio.sleep(1.0)
    finally:
        await assert_closes_in_time(store)
    relay.resume()

    # Its sessions end on the server too once the relay delivers the closes it held.
    async def gone() -> bool:
        return await backends(database, "keyfob_close_test") == 0

    await until(gone, within=5)
