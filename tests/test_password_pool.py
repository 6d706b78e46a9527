"""argon2 off the event loop: every password hash and check, the dummy one for unknown
users included, runs on a small pool of nice-19 threads with a bounded queue."""

from __future__ import annotations

import asyncio
import os
import sys
import threading
import time

import pytest

from keyfob import AuthenticationFailed, RateLimited, SessionManager
from keyfob.core.passwords import PasswordHasher
from keyfob.password_pool import LOW_PRIORITY, PasswordPool

from .conftest import PASSWORD


class RecordingHasher(PasswordHasher):
    """A cheap hasher that notes which thread (and at what priority) did each call."""

    def __init__(self) -> None:
        super().__init__("cheapest")
        self.calls: list[tuple[str, str, int]] = []

    def _note(self, what: str) -> None:
        thread = threading.current_thread().name
        self.calls.append((what, thread, os.getpriority(os.PRIO_PROCESS, 0)))

    def hash(self, password: str) -> str:
        self._note("hash")
        return super().hash(password)

    def verify(self, password_hash: str, password: str) -> bool:
        self._note("verify")
        return super().verify(password_hash, password)


@pytest.fixture
def recording(manager: SessionManager) -> RecordingHasher:
    hasher = RecordingHasher()
    manager.accounts.passwords.hasher = hasher
    return hasher


async def test_every_password_operation_runs_on_the_pool_threads(
    manager: SessionManager, recording: RecordingHasher
) -> None:
    """Register, login, a wrong password, an unknown user (its dummy verification) and a
    password change all hash on ``keyfob-argon2`` threads, never on the event loop's."""
    user = await manager.register("alice", PASSWORD)
    await manager.login("alice", PASSWORD)
    with pytest.raises(AuthenticationFailed):
        await manager.login("alice", "wrong password!")
    with pytest.raises(AuthenticationFailed):
        await manager.login("nobody", PASSWORD)
    await manager.change_password(user.id, PASSWORD, PASSWORD + "!")
    assert [what for what, _, _ in recording.calls] == [
        "hash",
        "verify",
        "verify",
        "verify",
        "verify",
        "hash",
    ]
    assert all(thread.startswith("keyfob-argon2") for _, thread, _ in recording.calls)


@pytest.mark.skipif(sys.platform != "linux", reason="per-thread nice values are Linux's")
async def test_the_pool_threads_run_at_the_lowest_priority(
    manager: SessionManager, recording: RecordingHasher
) -> None:
    """The hashing threads are nice 19 (the loop keeps its priority)."""
    await manager.register("alice", PASSWORD)
    assert recording.calls[0][2] == LOW_PRIORITY
    assert os.getpriority(os.PRIO_PROCESS, 0) != LOW_PRIORITY


async def test_the_loop_keeps_running_while_a_real_argon2_verification_runs() -> None:
    """A ticker on the loop keeps ticking during an argon2id (default cost) check."""
    pool = PasswordPool(PasswordHasher(), threads=1)
    digest = await pool.hash(PASSWORD)
    ticks = 0

    async def ticker() -> None:
        nonlocal ticks
        while True:
            await asyncio.sleep(0.002)
            ticks += 1

    task = asyncio.create_task(ticker())
    await asyncio.sleep(0)
    started = time.monotonic()
    assert await pool.verify(digest, PASSWORD)
    took = time.monotonic() - started
    task.cancel()
    pool.close()
    # On the loop the hash would allow no tick at all until it ended.
    assert ticks >= 2, (ticks, took)


async def test_a_full_queue_refuses_at_once_with_retry_after() -> None:
    """Beyond ``queue_limit`` waiting or running hashes, calls get 429 at once, and a
    slot frees when a hash ends (not merely when its caller stops waiting)."""
    release = threading.Event()

    class BlockingHasher(PasswordHasher):
        def hash(self, password: str) -> str:
            release.wait(10)
            return "$argon2id$blocked"

    pool = PasswordPool(BlockingHasher("cheapest"), threads=1, queue_limit=2)
    first = asyncio.ensure_future(pool.hash("a"))
    second = asyncio.ensure_future(pool.hash("b"))
    await asyncio.sleep(0.01)
    with pytest.raises(RateLimited) as refused:
        await pool.hash("c")
    assert refused.value.retry_after >= 1
    with pytest.raises(RateLimited):
        await pool.dummy_verify("unknown users wait in the same queue")
    release.set()
    assert await asyncio.gather(first, second) == ["$argon2id$blocked"] * 2
    assert await pool.hash("d") == "$argon2id$blocked"
    pool.close()


def test_pool_sizes_are_checked() -> None:
    from keyfob import ConfigurationError

    with pytest.raises(ConfigurationError):
        PasswordPool(PasswordHasher("cheapest"), threads=0)
    with pytest.raises(ConfigurationError):
        PasswordPool(PasswordHasher("cheapest"), threads=2, queue_limit=1)
