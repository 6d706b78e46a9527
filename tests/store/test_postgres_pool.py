"""The PostgreSQL store's connection pool, on stand-in connections (no server needed).

What the pool promises the store: idle connections lent again without I/O, most
recently returned first; new ones made on demand up to the limit, past which callers
wait a bounded time; broken connections dropped rather than repaired; and a close that
lets lent connections come back before dropping them.
"""

from __future__ import annotations

import asyncio
from typing import Any

import asyncpg
import pytest

from keyfob.store.postgres.pool import ConnectionPool


class FakeConnection:
    """Answers the questions the pool asks of an asyncpg connection."""

    def __init__(self, number: int) -> None:
        self.number = number
        self.closed = False
        self.terminated = False
        self.in_transaction = False

    def __repr__(self) -> str:
        return f"FakeConnection({self.number})"

    def is_closed(self) -> bool:
        return self.closed

    def is_in_transaction(self) -> bool:
        return self.in_transaction

    def terminate(self) -> None:
        self.closed = self.terminated = True

    async def close(self, **_options: object) -> None:
        self.closed = True


class Connector:
    """Makes numbered connections; ``fail`` lists the attempts (1-based) that fail."""

    def __init__(self, *, fail: tuple[int, ...] = ()) -> None:
        self.attempts = 0
        self.fail = fail
        self.made: list[FakeConnection] = []

    async def __call__(self) -> Any:
        self.attempts += 1
        attempt = self.attempts
        await asyncio.sleep(0)  # a real connect awaits the network
        if attempt in self.fail:
            raise ConnectionRefusedError("refused by the test")
        conn = FakeConnection(len(self.made))
        self.made.append(conn)
        return conn


def make_pool(max_size: int = 2, **connector: Any) -> tuple[ConnectionPool, Connector]:
    connect = Connector(**connector)
    return ConnectionPool(connect, max_size), connect


async def test_a_returned_connection_is_lent_again_without_connecting() -> None:
    """A connection given back sound serves the next caller; no new one is made."""
    pool, connect = make_pool()
    first = await pool.acquire(within=1)
    pool.release(first, sound=True)
    assert await pool.acquire(within=1) is first
    assert connect.attempts == 1
    assert pool.size == 1


async def test_the_most_recently_returned_connection_is_lent_first() -> None:
    """Of several idle connections, the one returned last goes out first."""
    pool, _ = make_pool()
    a = await pool.acquire(within=1)
    b = await pool.acquire(within=1)
    pool.release(b, sound=True)
    pool.release(a, sound=True)
    assert await pool.acquire(within=1) is a
    assert await pool.acquire(within=1) is b


async def test_fill_opens_idle_connections_up_front() -> None:
    """fill(n) opens n connections that the next callers borrow without connecting."""
    pool, connect = make_pool(max_size=3)
    await pool.fill(2)
    assert pool.size == 2
    lent = {await pool.acquire(within=1), await pool.acquire(within=1)}
    assert lent == set(connect.made)
    assert connect.attempts == 2


async def test_connections_are_made_on_demand_up_to_the_limit() -> None:
    """Past max_size a caller waits, and gets the first connection that comes back."""
    pool, connect = make_pool(max_size=2)
    a = await pool.acquire(within=1)
    await pool.acquire(within=1)
    waiting = asyncio.ensure_future(pool.acquire(within=5))
    await asyncio.sleep(0.01)
    assert not waiting.done()
    pool.release(a, sound=True)
    assert await waiting is a
    assert connect.attempts == 2
    assert pool.size == 2


async def test_waiting_for_a_connection_gives_up_after_within() -> None:
    """A caller that finds every connection lent waits at most `within`, then TimeoutError."""
    pool, _ = make_pool(max_size=1)
    held = await pool.acquire(within=1)
    with pytest.raises(TimeoutError):
        await pool.acquire(within=0.05)
    pool.release(held, sound=True)
    assert await pool.acquire(within=1) is held


async def test_a_broken_connection_is_dropped_and_replaced() -> None:
    """A connection given back unsound is terminated; the next caller gets a new one."""
    pool, connect = make_pool(max_size=1)
    broken = await pool.acquire(within=1)
    pool.release(broken, sound=False)
    assert broken.terminated
    assert pool.size == 0
    fresh = await pool.acquire(within=1)
    assert fresh is not broken
    assert connect.attempts == 2


async def test_a_connection_left_inside_a_transaction_is_dropped() -> None:
    """A connection given back inside a transaction is terminated, not lent again."""
    pool, _ = make_pool(max_size=1)
    conn = await pool.acquire(within=1)
    conn.in_transaction = True
    pool.release(conn, sound=True)
    assert conn.terminated
    assert await pool.acquire(within=1) is not conn


async def test_an_idle_connection_found_closed_is_passed_over() -> None:
    """A connection that closed while idle (the server went away) is never lent."""
    pool, connect = make_pool(max_size=2)
    await pool.fill(2)
    newest = connect.made[-1]
    newest.closed = True
    assert await pool.acquire(within=1) is connect.made[0]
    replacement = await pool.acquire(within=1)
    assert replacement not in connect.made[:2]
    assert connect.attempts == 3


async def test_a_failed_connect_gives_its_place_back() -> None:
    """A connect that fails raises to its caller and leaves room for the next caller."""
    pool, _ = make_pool(max_size=1, fail=(1,))
    with pytest.raises(ConnectionRefusedError):
        await pool.acquire(within=1)
    assert pool.size == 0
    conn = await asyncio.wait_for(pool.acquire(within=1), 1)
    assert conn.number == 0


async def test_fill_opens_all_or_none() -> None:
    """When one of fill's connects fails, the others are terminated and the error raised."""
    pool, connect = make_pool(max_size=3, fail=(2,))
    with pytest.raises(ConnectionRefusedError):
        await pool.fill(3)
    assert pool.size == 0
    assert len(connect.made) == 2
    assert all(conn.terminated for conn in connect.made)


async def test_a_closed_pool_lends_nothing() -> None:
    """acquire() on a closed pool raises asyncpg's InterfaceError (the store's 503)."""
    pool, _ = make_pool()
    await pool.close(within=1)
    with pytest.raises(asyncpg.InterfaceError):
        await pool.acquire(within=1)


async def test_close_closes_idle_connections_politely() -> None:
    """close() closes idle connections (not terminate) and leaves none open."""
    pool, connect = make_pool()
    await pool.fill(2)
    await pool.close(within=1)
    assert all(conn.closed and not conn.terminated for conn in connect.made)
    assert pool.size == 0


async def test_close_waits_for_a_lent_connection_to_come_back() -> None:
    """close() returns once the lent connection is given back, and drops it then."""
    pool, _ = make_pool()
    lent = await pool.acquire(within=1)
    closing = asyncio.ensure_future(pool.close(within=5))
    await asyncio.sleep(0.01)
    assert not closing.done()
    pool.release(lent, sound=True)
    await asyncio.wait_for(closing, 1)
    assert lent.terminated
    assert pool.size == 0


async def test_close_drops_a_connection_that_does_not_come_back_in_time() -> None:
    """A connection still lent after `within` seconds is terminated by close()."""
    pool, _ = make_pool()
    lent = await pool.acquire(within=1)
    await asyncio.wait_for(pool.close(within=0.05), 1)
    assert lent.terminated
