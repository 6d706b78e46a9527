"""The background work of every server process: revocation resync, key reload, purge.

Each instance runs three periodic jobs (intervals from :class:`~keyfob.Settings`):

- **revocation resync** (``revocation_resync_interval``, default 5 s): pull recent
  revocations from the store even though no notification said so. Notifications
  (PostgreSQL ``NOTIFY``, Redis fan-out) make revocations reach other instances within
  milliseconds; this job bounds the damage when one is missed (a listener cut off, a
  revocation written with triggers disabled): a revoked session's access tokens are
  refused everywhere within one interval, far inside the access-token lifetime that
  would otherwise be the bound.
- **key reload** (``key_reload_interval``, default 60 s): publish in the JWKS a signing
  key that another instance or ``keyfob keys rotate`` added. Keys are installed only
  when the stored set changed, so the manager's own reload on an unknown ``kid`` (rate
  limited to one a second) is never starved by this job.
- **purge** (``purge_interval``, default 1 h): delete expired and long-revoked sessions
  in batches of :data:`PURGE_BATCH`, yielding between batches. A store that offers a
  database-wide purge lock (PostgreSQL) lets one instance at a time do it; the others
  skip their turn. The purge never blocks a refresh: batches skip locked rows and only
  touch rows that could not rotate anyway.

A failing job is logged and tried again at its next turn; nothing here ends the process.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
from collections.abc import Awaitable, Callable
from typing import Final, Protocol, runtime_checkable

from ..exceptions import KeyfobError
from ..manager import SessionManager

__all__ = [
    "PURGE_BATCH",
    "PurgeLock",
    "purge_in_batches",
    "reload_keys_if_changed",
    "start_maintenance",
    "stop_maintenance",
]

logger = logging.getLogger("keyfob.server")

#: Sessions deleted per statement: small enough that one batch holds its row locks for
#: a millisecond or two.
PURGE_BATCH: Final = 500
#: Pause between purge batches, so refreshes are never queued behind a long purge.
PURGE_PAUSE: Final = 0.01


@runtime_checkable
class PurgeLock(Protocol):
    """A store that can make one instance at a time the purger (``PostgresStore``)."""

    async def try_lock_purge(self) -> bool: ...

    async def release_purge_lock(self) -> None: ...


async def reload_keys_if_changed(manager: SessionManager) -> bool:
    """Install the stored signing keys if they differ from the ones in use."""
    stored = await manager.store.load_keys()
    if set(stored) == set(manager.keys()):
        return False
    await manager.reload_keys()
    return True


async def purge_in_batches(
    manager: SessionManager, lock: PurgeLock | None = None, *, batch: int = PURGE_BATCH
) -> int | None:
    """Purge until nothing is left; ``None`` if another instance holds the purge lock."""
    if lock is not None and not await lock.try_lock_purge():
        return None
    total = 0
    while True:
        deleted = await manager.purge(batch=batch, max_batches=1)
        total += deleted
        if deleted < batch:
            return total
        await asyncio.sleep(PURGE_PAUSE)


def start_maintenance(
    manager: SessionManager, *, purge_lock: PurgeLock | None = None
) -> list[asyncio.Task[None]]:
    """Start the three periodic jobs of one server process; stop them with
    :func:`stop_maintenance`."""
    settings = manager.settings

    async def purge() -> None:
        deleted = await purge_in_batches(manager, purge_lock)
        if deleted:
            logger.info(
                "purged %d expired or long-revoked session(s) and authorization code(s)", deleted
            )

    async def resync() -> None:
        await manager.sync_revocations()

    async def reload_keys() -> None:
        await reload_keys_if_changed(manager)

    jobs: list[tuple[str, float, Callable[[], Awaitable[None]]]] = [
        ("revocation resync", settings.revocation_resync_interval, resync),
        ("key reload", settings.key_reload_interval, reload_keys),
        ("purge", settings.purge_interval, purge),
    ]
    loop = asyncio.get_running_loop()
    return [
        loop.create_task(_every(interval, job, name), name=f"keyfob-{name.replace(' ', '-')}")
        for name, interval, job in jobs
    ]


async def stop_maintenance(tasks: list[asyncio.Task[None]]) -> None:
    """Cancel the jobs and wait until they have ended."""
    pending = {task for task in tasks if not task.done()}
    while pending:
        # Asked again until done: on Python 3.11 a cancellation that coincides with a
        # driver's own timeout expiring can be swallowed (asyncio.timeout, fixed in 3.12).
        for task in pending:
            task.cancel()
        _, pending = await asyncio.wait(pending, timeout=0.1)
    for task in tasks:
        with contextlib.suppress(asyncio.CancelledError):
            await task


async def _every(interval: float, job: Callable[[], Awaitable[None]], name: str) -> None:
    while True:
        # ±10% jitter, so instances started together do not query the store in step.
        await asyncio.sleep(interval * (0.9 + 0.2 * random.random()))  # noqa: S311 (not a secret)
        try:
            await job()
        except KeyfobError as exc:
            logger.warning("%s failed (will retry): %s", name, exc.description)
        except Exception:  # a background job must not die quietly: log it, keep going
            logger.exception("%s failed (will retry)", name)
