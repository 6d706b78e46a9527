"""argon2 off the event loop: a small pool of low-priority threads with a bounded queue.

One argon2id hash or verification costs ~110 ms of CPU (``rfc9106-low-memory``). Run on
the event loop, a dozen concurrent logins stall every other request of the process,
refreshes and the JWKS included, for about a second. Run in the default executor at
normal priority, the hashes still take the core away from the loop on a one-core
worker (refresh p99 212 to 281 ms, measured December 2026; ``bench/login_stall.py``
measures the design below, ``docs/benchmarks.md`` has its figures). So:

- **a dedicated pool of 1 or 2 threads**: at most that many hashes run at once, whatever
  the number of logins in flight;
- **at the lowest OS priority** (``nice 19`` on the worker threads themselves, Linux
  only: ``setpriority`` on a thread id): when the loop and a hash want the same core, the
  loop wins, so refreshes stay fast and logins wait instead;
- **a bounded queue**: past :attr:`PasswordPool.queue_limit` hashes waiting or running,
  a login or registration is refused at once with 429 and ``Retry-After`` rather than
  queued without limit (an unbounded queue turns a login flood into memory growth and
  into answers that arrive after the client gave up).

Everything that touches a password goes through the pool, the dummy verification of an
unknown user included, so an unknown name waits in the same queue as a known one and
the timing does not tell them apart.
"""

from __future__ import annotations

import concurrent.futures
import os
import sys
import threading
from collections.abc import Callable
from typing import Final, TypeVar

from .core.passwords import PasswordHasher
from .exceptions import ConfigurationError, RateLimited

__all__ = ["LOW_PRIORITY", "PasswordPool"]

_T = TypeVar("_T")

#: The nice value of the hashing threads: the lowest priority there is.
LOW_PRIORITY: Final = 19


def _lower_priority() -> None:
    """Run in each new worker thread: make that thread (not the process) nice 19."""
    # On Linux a thread id passed as PRIO_PROCESS names that one thread (setpriority(2),
    # NOTES). Elsewhere the call would renice the whole process, event loop included.
    if sys.platform == "linux":
        os.setpriority(os.PRIO_PROCESS, threading.get_native_id(), LOW_PRIORITY)


class PasswordPool:
    """The :class:`~keyfob.core.passwords.PasswordHasher` calls, awaited off the loop.

    Usable from any event loop (the slots are a thread-safe semaphore); the threads
    start with the first call and end with :meth:`close` (a later call starts them again).
    """

    __slots__ = ("_executor", "_lock", "_slots", "hasher", "queue_limit", "threads")

    def __init__(self, hasher: PasswordHasher, *, threads: int = 2, queue_limit: int = 32) -> None:
        if threads < 1:
            raise ConfigurationError("password_hash_threads must be at least 1")
        if queue_limit < threads:
            raise ConfigurationError("password_hash_queue must be at least password_hash_threads")
        self.hasher = hasher
        self.threads = threads
        #: The most hashes waiting or running at once; beyond it calls are refused.
        self.queue_limit = queue_limit
        self._slots = threading.BoundedSemaphore(queue_limit)
        self._lock = threading.Lock()
        self._executor: concurrent.futures.ThreadPoolExecutor | None = None

    async def hash(self, password: str) -> str:
        return await self._run(self.hasher.hash, password)

    async def verify(self, password_hash: str, password: str) -> bool:
        return await self._run(self.hasher.verify, password_hash, password)

    async def dummy_verify(self, password: str) -> None:
        """The work of a verification, for a user that does not exist (same queue too)."""
        await self._run(self.hasher.dummy_verify, password)

    def needs_rehash(self, password_hash: str) -> bool:
        # Reads the hash's parameters only: microseconds, fine on the loop.
        return self.hasher.needs_rehash(password_hash)

    def close(self) -> None:
        """Let the threads end once their current hash is done; queued ones are dropped."""
        with self._lock:
            executor, self._executor = self._executor, None
        if executor is not None:
            executor.shutdown(wait=False, cancel_futures=True)

    async def _run(self, fn: Callable[..., _T], *args: str) -> _T:
        if not self._slots.acquire(blocking=False):
            raise RateLimited(
                "too many password checks in progress; try again shortly",
                retry_after=self._retry_after(),
            )
        try:
            future = self._pool().submit(fn, *args)
        except BaseException:
            self._slots.release()
            raise
        # The slot is given back when the thread is done, not when the caller stops
        # waiting: a cancelled login's hash still occupies a thread until it ends.
        future.add_done_callback(lambda _: self._slots.release())
        # Imported here, where a loop is running anyway: `import keyfob` (and with it
        # keyfob.core) loads no event loop (tests/test_import_boundaries.py).
        import asyncio

        return await asyncio.wrap_future(future)

    def _pool(self) -> concurrent.futures.ThreadPoolExecutor:
        with self._lock:
            if self._executor is None:
                self._executor = concurrent.futures.ThreadPoolExecutor(
                    max_workers=self.threads,
                    thread_name_prefix="keyfob-argon2",
                    initializer=_lower_priority,
                )
            return self._executor

    def _retry_after(self) -> int:
        # A full queue drains in about queue_limit / threads hashes of ~0.1 s each.
        return max(1, round(self.queue_limit / self.threads * 0.1))
