"""Worker processes for the multi-process store tests.

:class:`WorkerPool` starts processes with the ``spawn`` start method (a fresh
interpreter each, like separate server workers: no inherited connections or threads).
Each worker builds its own store from a picklable factory and then carries out jobs.
:meth:`WorkerPool.race` hands every worker a job and releases them all at once through
a barrier, so the jobs really run concurrently against the same database.

Jobs are tuples; see :func:`_carry_out`. Results come back as plain data; an exception
in a job comes back as :class:`Failed` with the exception's class name.
"""

from __future__ import annotations

import asyncio
import contextlib
import multiprocessing
import multiprocessing.connection
import multiprocessing.context
import multiprocessing.synchronize
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from multiprocessing.process import BaseProcess
from types import TracebackType
from typing import Any

from keyfob.manager import SessionManager
from keyfob.settings import Settings
from keyfob.store.protocol import Store
from keyfob.testing import FrozenClock

__all__ = ["Failed", "WorkerPool"]

#: Seconds to wait for a worker before calling the test failed (spawn takes ~0.5 s).
TIMEOUT = 60.0

Job = tuple[Any, ...]
StoreFactory = Callable[[], Store]


@dataclass(frozen=True, slots=True)
class Failed:
    """A job raised ``error`` (the exception's class name) with ``message``."""

    error: str
    message: str


class WorkerPool:
    """``processes`` worker processes, each with its own store on the same database.

    With ``open_store=False`` the workers only build their stores, so a first
    ``race_all(("migrate",))`` races the opening of a fresh database.
    """

    def __init__(
        self, store_factory: StoreFactory, processes: int, *, open_store: bool = True
    ) -> None:
        if processes < 1:
            raise ValueError("a pool needs at least one process")
        ctx = _context()
        self._barrier = ctx.Barrier(processes + 1)
        self._conns: list[multiprocessing.connection.Connection] = []
        self._procs: list[BaseProcess] = []
        try:
            for _ in range(processes):
                parent_end, child_end = ctx.Pipe()
                proc = ctx.Process(
                    target=_worker_main,
                    args=(child_end, self._barrier, store_factory, open_store),
                    daemon=True,
                )
                self._conns.append(parent_end)
                self._procs.append(proc)
                proc.start()
                child_end.close()
            for i in range(processes):
                ready = self._receive(i)
                if ready != "ready":
                    raise AssertionError(f"worker {i} did not start: {ready!r}")
        except BaseException:
            self.close()
            raise

    def __enter__(self) -> WorkerPool:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    def __len__(self) -> int:
        return len(self._procs)

    def race(self, jobs: Sequence[Job]) -> list[Any]:
        """Give worker ``i`` the job ``jobs[i]``, start them all at once, return the results."""
        if len(jobs) != len(self._procs):
            raise ValueError(f"one job per worker: {len(self._procs)} workers, {len(jobs)} jobs")
        for conn, job in zip(self._conns, jobs, strict=True):
            conn.send(job)
        self._barrier.wait(timeout=TIMEOUT)
        return [self._receive(i) for i in range(len(self._procs))]

    def race_all(self, job: Job) -> list[Any]:
        """Every worker carries out the same job at the same moment."""
        return self.race([job] * len(self._procs))

    def kill(self, i: int) -> None:
        """SIGKILL worker ``i``: no clean-up of any kind runs in it."""
        proc = self._procs[i]
        proc.kill()
        proc.join(TIMEOUT)
        if proc.exitcode is None:
            raise AssertionError(f"worker {i} survived SIGKILL")

    def close(self) -> None:
        """Stop every worker (politely, then by force) and release every resource."""
        for conn, proc in zip(self._conns, self._procs, strict=False):
            if proc.is_alive():
                with contextlib.suppress(OSError):  # it is dying on its own
                    conn.send(None)
        for proc in self._procs:
            proc.join(TIMEOUT)
            if proc.is_alive():
                proc.kill()
                proc.join(TIMEOUT)
            proc.close()
        for conn in self._conns:
            conn.close()
        self._procs.clear()
        self._conns.clear()

    def _receive(self, i: int) -> Any:
        conn = self._conns[i]
        if not conn.poll(TIMEOUT):
            raise AssertionError(f"worker {i} did not answer within {TIMEOUT} s")
        try:
            return conn.recv()
        except EOFError:
            raise AssertionError(f"worker {i} died (exit code {self._procs[i].exitcode})") from None


def _context() -> multiprocessing.context.BaseContext:
    """Fresh processes: no connection, thread or lock of the test process is inherited.

    ``forkserver`` gives the same isolation as ``spawn`` (the server is a new interpreter
    that forks each worker before anything else runs in it) but starts a worker in
    milliseconds instead of re-importing keyfob for half a second.
    """
    if "forkserver" not in multiprocessing.get_all_start_methods():
        return multiprocessing.get_context("spawn")
    ctx = multiprocessing.get_context("forkserver")
    ctx.set_forkserver_preload([__name__])
    return ctx


def _worker_main(
    conn: multiprocessing.connection.Connection,
    barrier: multiprocessing.synchronize.Barrier,
    store_factory: StoreFactory,
    open_store: bool,
) -> None:
    """The body of a worker process: open the store, then carry out jobs until told to stop."""
    state = _WorkerState(store_factory())
    with asyncio.Runner() as runner:
        try:
            if open_store:
                runner.run(state.store.open())
            conn.send("ready")
            while (job := conn.recv()) is not None:
                barrier.wait(timeout=TIMEOUT)
                try:
                    result = runner.run(_carry_out(state, job))
                except Exception as exc:
                    result = Failed(type(exc).__name__, str(exc))
                conn.send(result)
        finally:
            runner.run(state.close())
            conn.close()


class _WorkerState:
    """What a worker keeps between jobs: its store and, once started, a manager on it."""

    def __init__(self, store: Store) -> None:
        self.store = store
        self.clock = FrozenClock()
        self.manager: SessionManager | None = None

    async def close(self) -> None:
        await self.store.close()


async def _carry_out(state: _WorkerState, job: Job) -> Any:
    kind, *args = job
    store = state.store
    if kind == "migrate":
        return await store.migrate()
    if kind == "migrate_new":
        # A store of its own on another (fresh) database, opened and closed in this job.
        (factory,) = args
        other = factory()
        try:
            return await other.migrate()
        finally:
            await other.close()
    if kind == "rotate":
        sid, counter, secret_hash, now, idle_ttl = args
        session = await store.rotate(
            sid, counter=counter, secret_hash=secret_hash, now=now, idle_ttl=idle_ttl
        )
        return None if session is None else session.counter
    if kind == "counter":
        (sid,) = args
        session = await store.get_session(sid)
        return None if session is None else session.counter
    if kind == "start_manager":
        settings, now = args
        await _start_manager(state, settings, now)
        return None
    if kind == "refresh":
        token, now = args
        if state.manager is None:
            raise RuntimeError("start_manager first")
        state.clock.set(now)
        pair = await state.manager.refresh(token)
        return pair.refresh_token.value
    raise ValueError(f"unknown job {kind!r}")


async def _start_manager(state: _WorkerState, settings: Settings, now: float) -> None:
    state.clock.set(now)
    state.manager = SessionManager(settings, state.store, clock=state.clock)
    await state.manager.start()
