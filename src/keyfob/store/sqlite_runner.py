"""Who uses the SQLite store's connection, and on which thread.

One connection, used by one piece of work at a time, in the order the work arrived.
Work comes in two kinds:

- **jobs**, any function of the connection (reads, transactions of several statements,
  migrations): they run on the store's own thread, so the event loop never waits for
  them.
- **writes**, statements that need no transaction of their own (a rotation, the
  revocation of one session, a new session, an event). Writes that arrive while the
  connection is busy wait *together*, and then run as one group: the statements on the
  event loop inside one ``BEGIN IMMEDIATE``, and only the ``COMMIT`` on the thread. One
  commit (one fsync with ``synchronous=FULL``) and one hand-over to the thread and back
  serve the whole group.

Why the statements run on the loop: a rotation's UPDATE and SELECT take ~10 µs, while a
hand-over to a thread and back costs ~100 µs of CPU in wake-ups and GIL hand-overs
(docs/benchmarks.md has the measurement). The COMMIT is the part that may block (an
fsync), so it alone goes to the thread, once per group. The loop never waits for
another process's lock: it asks for the write lock with no busy timeout, and when
another connection holds it the whole group goes to the thread, which waits up to
``busy_timeout``. (The connection's busy timeout is 0 between pieces of work; work on
the thread raises it for its duration. That costs a PRAGMA or two per job, and none per
group.)

A caller hears of its write only after the COMMIT returned: nobody ever sees a write
that could still be rolled back. A failed BEGIN or COMMIT fails every caller of the
group (nothing was changed). A statement that fails rolls the group back, and its
writes run again one by one on the thread, so each caller gets what it would have got
alone.

The thread holds nothing but its queue between jobs, so a store nobody closed can be
collected (its finalizer then ends the thread).
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
import queue
import sqlite3
import threading
from collections import deque
from collections.abc import Callable, Iterator
from typing import Any, Final, TypeVar

__all__ = ["MAX_GROUP", "ConnectionRunner", "Operation", "rollback_quietly"]

logger = logging.getLogger("keyfob")

T = TypeVar("T")
#: A write: statements on the connection, run inside a transaction someone else opened.
Operation = Callable[[sqlite3.Connection], Any]
_Outcome = tuple[Any, BaseException | None]

#: The most writes committed together (bounds the latency a group adds).
MAX_GROUP: Final = 64


class _Job:
    __slots__ = ("future", "loop", "run")

    def __init__(
        self, loop: asyncio.AbstractEventLoop, future: asyncio.Future[Any], run: Callable[[], Any]
    ) -> None:
        self.loop = loop
        self.future = future
        self.run = run


class _Group:
    __slots__ = ("futures", "loop", "operations")

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        self.loop = loop
        self.futures: list[asyncio.Future[Any]] = []
        self.operations: list[Operation] = []


class ConnectionRunner:
    """Runs jobs and groups of writes on one connection, one at a time, in order.

    ``connection`` returns the open connection (or raises when there is none);
    ``run_alone`` runs one write in a transaction of its own, on the thread, and raises
    the store's errors; ``error_for`` turns a failed BEGIN or COMMIT into a fresh
    exception for each caller of the group.
    """

    def __init__(
        self,
        name: str,
        *,
        connection: Callable[[], sqlite3.Connection],
        run_alone: Callable[[Operation], Any],
        error_for: Callable[[BaseException], BaseException],
        busy_timeout: float,
    ) -> None:
        self._connection = connection
        self._run_alone = run_alone
        self._error_for = error_for
        self._busy_timeout_ms = int(busy_timeout * 1000)
        self._lock = threading.Lock()
        self._busy = False
        self._waiting: deque[_Job | _Group] = deque()
        self._thread_jobs: queue.SimpleQueue[Callable[[], None] | None] = queue.SimpleQueue()
        # A daemon: a store nobody closed must not keep the interpreter alive. Killing it
        # at exit is safe: SQLite commits atomically or not at all.
        threading.Thread(target=_serve, args=(self._thread_jobs,), name=name, daemon=True).start()

    # on the event loop

    def run(self, job: Callable[[], T]) -> asyncio.Future[T]:
        """Run ``job`` on the thread when the connection is free; its result."""
        loop = asyncio.get_running_loop()
        future: asyncio.Future[T] = loop.create_future()
        with self._lock:
            self._waiting.append(_Job(loop, future, job))
            start = self._next_locked()
        if start is not None:
            start()
        return future

    def write(self, operation: Operation) -> asyncio.Future[Any]:
        """Run ``operation`` in the next group of writes; its result, once committed."""
        loop = asyncio.get_running_loop()
        future: asyncio.Future[Any] = loop.create_future()
        with self._lock:
            last = self._waiting[-1] if self._waiting else None
            if not (
                isinstance(last, _Group) and last.loop is loop and len(last.operations) < MAX_GROUP
            ):
                last = _Group(loop)
                self._waiting.append(last)
            last.operations.append(operation)
            last.futures.append(future)
            start = self._next_locked()
        if start is not None:
            start()
        return future

    def stopper(self) -> Callable[[], None]:
        """What lets the thread end once the work handed to it so far is done.

        It holds the thread's queue only (not this runner, which holds the store), so it
        can be the finalizer of a store nobody closed.
        """
        return functools.partial(self._thread_jobs.put, None)

    def waiting(self) -> int:
        """How many calls wait for the connection (not counting the one using it)."""
        with self._lock:
            return sum(
                1 if isinstance(item, _Job) else len(item.operations) for item in self._waiting
            )

    # whose turn it is (on either thread)

    def _next_locked(self) -> Callable[[], None] | None:
        """Claim the connection for the next waiting work; what starts it (call unlocked)."""
        if self._busy or not self._waiting:
            return None
        self._busy = True
        head = self._waiting[0]
        if isinstance(head, _Job):
            self._waiting.popleft()
            return lambda: self._thread_jobs.put(lambda: self._run_job(head))
        # A group stays open to more writes until its loop gets to start it.
        return lambda: self._schedule_group(head.loop)

    def _release(self) -> None:
        with self._lock:
            self._busy = False
            start = self._next_locked()
        if start is not None:
            start()

    def _schedule_group(self, loop: asyncio.AbstractEventLoop) -> None:
        try:
            if _running_loop() is loop:
                loop.call_soon(self._start_group)
            else:
                loop.call_soon_threadsafe(self._start_group)
        except RuntimeError:
            # That loop is closed: nobody can be waiting for the group any more.
            with self._lock:
                self._waiting.popleft()
            self._release()

    # a group of writes

    def _start_group(self) -> None:
        """On the group's loop: BEGIN and the statements; the COMMIT goes to the thread."""
        with self._lock:
            group = self._waiting.popleft()
        assert isinstance(group, _Group)
        try:
            conn = self._connection()
            locked = _begin_without_waiting(conn)
        except BaseException as exc:
            self._finish(group, [(None, self._error_for(exc)) for _ in group.operations])
            return
        if not locked:
            # Another connection writes: wait for its lock on the thread, not here.
            self._thread_jobs.put(lambda: self._run_group_on_thread(group))
            return
        try:
            results = [operation(conn) for operation in group.operations]
        except BaseException:
            rollback_quietly(conn)
            self._thread_jobs.put(lambda: self._run_one_by_one(group))
            return
        self._thread_jobs.put(lambda: self._commit(group, conn, results))

    def _commit(self, group: _Group, conn: sqlite3.Connection, results: list[Any]) -> None:
        """On the thread: COMMIT the group the loop ran."""
        try:
            try:
                conn.execute("COMMIT")
            except sqlite3.OperationalError as exc:
                # Only without WAL (a rollback journal) does COMMIT wait for readers; a
                # busy COMMIT leaves the transaction open, to be committed again.
                if not _is_busy(exc):
                    raise
                with self._waiting_for_locks():
                    conn.execute("COMMIT")
        except BaseException as exc:
            rollback_quietly(conn)
            self._finish(group, [(None, self._error_for(exc)) for _ in results])
            return
        self._finish(group, [(result, None) for result in results])

    def _run_group_on_thread(self, group: _Group) -> None:
        """On the thread: the whole group, waiting for the write lock if need be."""
        try:
            conn = self._connection()
            with self._waiting_for_locks():
                conn.execute("BEGIN IMMEDIATE")
        except BaseException as exc:
            self._finish(group, [(None, self._error_for(exc)) for _ in group.operations])
            return
        try:
            results = [operation(conn) for operation in group.operations]
        except BaseException:
            rollback_quietly(conn)
            self._run_one_by_one(group)
            return
        self._commit(group, conn, results)

    def _run_one_by_one(self, group: _Group) -> None:
        """On the thread: each write in a transaction of its own, with its own outcome."""
        run_alone = self._run_alone
        with self._waiting_for_locks():
            outcomes = [_outcome(functools.partial(run_alone, op)) for op in group.operations]
        self._finish(group, outcomes)

    def _finish(self, group: _Group, outcomes: list[_Outcome]) -> None:
        self._release()
        _deliver(group.loop, _settle_all, group.futures, outcomes)

    @contextlib.contextmanager
    def _waiting_for_locks(self) -> Iterator[None]:
        """On the thread: wait up to busy_timeout for other connections' locks, then 0."""
        _set_busy_timeout(self._connection, self._busy_timeout_ms)
        try:
            yield
        finally:
            # A job may have opened (connect) or closed the connection meanwhile.
            _set_busy_timeout(self._connection, 0)

    # a job

    def _run_job(self, job: _Job) -> None:
        """On the thread."""
        with self._waiting_for_locks():
            outcome = _outcome(job.run)
        self._release()
        _deliver(job.loop, _settle_all, [job.future], [outcome])


def _serve(jobs: queue.SimpleQueue[Callable[[], None] | None]) -> None:
    # Hold nothing (a job's closure holds the store) while waiting for the next one.
    while (job := jobs.get()) is not None:
        job()
        del job


def _begin_without_waiting(conn: sqlite3.Connection) -> bool:
    """``BEGIN IMMEDIATE`` if the write lock is free right now; False if it is taken.

    Between pieces of work the connection's busy timeout is 0, so SQLite answers at once.
    """
    try:
        conn.execute("BEGIN IMMEDIATE")
    except sqlite3.OperationalError as exc:
        if _is_busy(exc):
            return False
        raise
    return True


def _is_busy(exc: sqlite3.Error) -> bool:
    return bool(getattr(exc, "sqlite_errorcode", 0) & 0xFF == sqlite3.SQLITE_BUSY)


def _set_busy_timeout(connection: Callable[[], sqlite3.Connection], ms: int) -> None:
    try:
        conn = connection()
    except Exception:  # no connection (yet, or any more): nothing to set
        return
    try:
        conn.execute(f"PRAGMA busy_timeout = {ms}")
    except sqlite3.Error:
        # A connection that cannot run a PRAGMA fails the job's own statements too,
        # with the error that says more.
        logger.debug("could not set the SQLite busy timeout", exc_info=True)


def rollback_quietly(conn: sqlite3.Connection) -> None:
    try:
        if conn.in_transaction:
            conn.execute("ROLLBACK")
    except sqlite3.Error:
        # The error being handled says more; a connection that cannot roll back has
        # lost its transaction already (SQLite rolls back on I/O and full-disk errors).
        logger.debug("ROLLBACK failed after an SQLite error", exc_info=True)


def _outcome(run: Callable[[], Any]) -> _Outcome:
    try:
        return (run(), None)
    except BaseException as exc:  # handed to the awaiting coroutine, not lost
        return (None, exc)


def _running_loop() -> asyncio.AbstractEventLoop | None:
    return asyncio._get_running_loop()


def _deliver(loop: asyncio.AbstractEventLoop, callback: Callable[..., None], *args: Any) -> None:
    """Call ``callback(*args)`` on ``loop``: soon if we are on it, else thread-safely."""
    # RuntimeError: the loop closed meanwhile, so nobody is waiting for this result.
    with contextlib.suppress(RuntimeError):
        if _running_loop() is loop:
            loop.call_soon(callback, *args)
        else:
            loop.call_soon_threadsafe(callback, *args)


def _settle_all(futures: list[asyncio.Future[Any]], outcomes: list[_Outcome]) -> None:
    for future, (result, error) in zip(futures, outcomes, strict=True):
        if future.cancelled():
            continue  # the caller gave up waiting; the write ran (and committed) all the same
        if error is None:
            future.set_result(result)
        else:
            future.set_exception(error)
