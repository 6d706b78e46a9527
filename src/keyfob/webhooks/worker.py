"""The outbox worker: sends due deliveries, records each attempt, schedules retries.

``keyfob serve`` runs one in every process (the server's lifespan). Each pass claims
due deliveries under a lease (:meth:`~keyfob.store.protocol.WebhookStore.claim_webhook_deliveries`:
across processes and instances, a delivery goes to one claimant), sends each in a task
of its own, at most ``max_in_flight`` at once, and records the outcome: delivered, due
again after a backoff (:mod:`.retry`), or failed for good after the last attempt.

An attempt takes at most ``attempt_timeout``; the lease lasts that plus a margin for the
store's own writes, so while its holder lives nobody else makes the same attempt. If the
holder dies mid-attempt, the lease runs out and the delivery is attempted again: the
delivery is at least once, and a receiver drops repeats by ``webhook-id``.

A failing store or receiver is logged and retried; nothing here ends the process, and
nothing here runs on a request's path.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
import secrets
from collections.abc import Sequence
from importlib import metadata
from typing import Final

from ..core.clock import Clock, SystemClock
from ..exceptions import ConfigurationError, KeyfobError
from ..settings import Settings, load_deployment_secret
from ..store.protocol import WebhookStore
from ..store.webhook_records import DeliveryStatus, WebhookDelivery
from .endpoints import check_url
from .retry import RetryPolicy
from .sealing import derive_sealing_key, unseal
from .sender import AttemptResult, new_client, send
from .signing import signed_headers

__all__ = ["WebhookWorker"]

logger = logging.getLogger("keyfob.webhooks")

#: How much longer than an attempt a lease lasts: time for the store's writes around it.
LEASE_MARGIN: Final = 60.0
#: How long finished deliveries stay in the log.
RETENTION: Final = 30 * 86_400.0
#: How often the worker deletes finished deliveries older than the retention.
PURGE_EVERY: Final = 3_600.0
_PURGE_BATCH: Final = 1_000


class WebhookWorker:
    """Delivers the outbox of ``store``; ``keys`` open the endpoints' sealed secrets."""

    def __init__(
        self,
        store: WebhookStore,
        *,
        keys: Sequence[bytes],
        clock: Clock | None = None,
        policy: RetryPolicy | None = None,
        poll_interval: float = 1.0,
        max_in_flight: int = 16,
        attempt_timeout: float = 10.0,
        rng: random.Random | None = None,
    ) -> None:
        if not keys:
            raise ConfigurationError("the webhook worker needs at least one sealing key")
        if poll_interval <= 0 or attempt_timeout <= 0 or max_in_flight < 1:
            raise ConfigurationError(
                "poll_interval and attempt_timeout must be positive, max_in_flight at least 1"
            )
        self.store = store
        self.keys = list(keys)
        self.clock: Clock = clock or SystemClock()
        self.policy = policy or RetryPolicy()
        self.poll_interval = poll_interval
        self.max_in_flight = max_in_flight
        self.attempt_timeout = attempt_timeout
        self._rng = rng or random.Random()  # noqa: S311 - jitter, not a secret
        self._client = new_client(max_connections=max_in_flight, user_agent=_user_agent())
        self._in_flight: set[asyncio.Task[AttemptResult | None]] = set()
        self._loop: asyncio.Task[None] | None = None
        self._purged_at: float | None = None

    @classmethod
    def from_settings(
        cls, settings: Settings, store: WebhookStore, *, clock: Clock | None = None
    ) -> WebhookWorker:
        """A worker whose sealing keys come from the deployment secrets, newest first."""
        keys = [derive_sealing_key(s) for s in load_deployment_secret(settings)]
        return cls(store, keys=keys, clock=clock)

    def __repr__(self) -> str:
        return f"WebhookWorker(store={self.store!r}, in_flight={len(self._in_flight)})"

    # running in the background

    def start(self) -> None:
        """Run the delivery loop in a task until :meth:`close`."""
        if self._loop is None:
            self._loop = asyncio.create_task(self._run(), name="keyfob webhooks")

    async def close(self) -> None:
        """Stop claiming, give attempts under way ``attempt_timeout`` to end, then stop."""
        if self._loop is not None:
            self._loop.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._loop
            self._loop = None
        if self._in_flight:
            await asyncio.wait(self._in_flight, timeout=self.attempt_timeout)
        for task in self._in_flight:
            task.cancel()
        if self._in_flight:
            await asyncio.gather(*self._in_flight, return_exceptions=True)
        await self._client.aclose()

    async def _run(self) -> None:
        # The first claim waits one interval: a starting server's round trips to its
        # database go to serving first (docs/scaling.md, "Start-up against a remote
        # database"); what was due before the start waits at most that long.
        await asyncio.sleep(self.poll_interval)
        while True:
            free = self.max_in_flight - len(self._in_flight)
            claimed = 0
            if free > 0:
                try:
                    claimed = len(self._start_attempts(await self._claim(free)))
                    await self._purge_now_and_then()
                except KeyfobError as exc:
                    logger.warning("webhook outbox: %s; trying again shortly", exc)
                except Exception:
                    # Never let one bad pass end the loop: the outbox would stop for good.
                    logger.exception("webhook outbox: unexpected error; trying again shortly")
            if self._in_flight and (free == 0 or claimed == free):
                # Full: more may be due. Claim again as soon as an attempt ends.
                await asyncio.wait(
                    self._in_flight, timeout=self.poll_interval, return_when="FIRST_COMPLETED"
                )
            else:
                await asyncio.sleep(self.poll_interval)

    def _start_attempts(
        self, deliveries: Sequence[WebhookDelivery]
    ) -> list[asyncio.Task[AttemptResult | None]]:
        started = []
        for delivery in deliveries:
            task = asyncio.create_task(self.attempt(delivery))
            self._in_flight.add(task)
            task.add_done_callback(self._in_flight.discard)
            started.append(task)
        return started

    async def _claim(self, limit: int, message_id: str | None = None) -> list[WebhookDelivery]:
        return await self.store.claim_webhook_deliveries(
            now=self.clock.now(),
            limit=limit,
            lease=secrets.token_urlsafe(12),
            lease_for=self.attempt_timeout + LEASE_MARGIN,
            message_id=message_id,
        )

    async def _purge_now_and_then(self) -> None:
        now = self.clock.now()
        if self._purged_at is not None and now - self._purged_at < PURGE_EVERY:
            return
        self._purged_at = now
        await self.store.purge_webhook_deliveries(
            finished_before=now - RETENTION, limit=_PURGE_BATCH
        )

    # one pass, one attempt

    async def deliver_due(self, *, message_id: str | None = None) -> list[AttemptResult | None]:
        """Claim what is due now (only ``message_id``'s deliveries, when given), attempt
        each, and return the results once all are recorded."""
        deliveries = await self._claim(self.max_in_flight, message_id)
        return list(await asyncio.gather(*self._start_attempts(deliveries)))

    async def attempt(self, delivery: WebhookDelivery) -> AttemptResult | None:
        """Send one claimed delivery and record how it went; None if it is gone (its
        endpoint was removed) or its lease was lost."""
        if delivery.lease is None:
            raise ValueError("only a claimed delivery can be attempted")
        try:
            return await self._attempt(delivery, delivery.lease)
        except KeyfobError as exc:
            # The store failed around the attempt: the lease runs out and it is tried again.
            logger.warning("webhook delivery %d: %s", delivery.id, exc)
            return None
        except Exception:
            logger.exception("webhook delivery %d failed unexpectedly", delivery.id)
            return None

    async def _attempt(self, delivery: WebhookDelivery, lease: str) -> AttemptResult | None:
        endpoint = await self.store.get_webhook_endpoint(delivery.endpoint_id)
        if endpoint is None:
            return None
        try:
            check_url(endpoint.url)
            secret = unseal(self.keys, endpoint.id, endpoint.secret_sealed)
        except (ValueError, ConfigurationError) as exc:
            result = AttemptResult(None, str(exc))
        else:
            headers = signed_headers(
                secret, delivery.message_id, int(self.clock.now()), delivery.payload
            )
            result = await send(
                self._client,
                endpoint.url,
                headers=headers,
                payload=delivery.payload,
                timeout=self.attempt_timeout,
            )
        now = self.clock.now()
        attempts = delivery.attempts + 1
        next_attempt_at: float | None = None
        if result.delivered:
            status = DeliveryStatus.DELIVERED
        else:
            delay = self.policy.delay(attempts, self._rng)
            status = DeliveryStatus.FAILED if delay is None else DeliveryStatus.PENDING
            next_attempt_at = None if delay is None else now + delay
            logger.warning(
                "webhook %s to %s: attempt %d failed (%s); %s",
                delivery.event_type,
                endpoint.id,
                attempts,
                result.error,
                "giving up" if delay is None else f"next in {delay:.0f} s",
            )
        recorded = await self.store.finish_webhook_attempt(
            delivery.id,
            lease=lease,
            status=status,
            now=now,
            next_attempt_at=next_attempt_at,
            status_code=result.status_code,
            error=result.error,
        )
        return result if recorded else None


def _user_agent() -> str:
    try:
        return f"keyfob-webhooks/{metadata.version('keyfob')}"
    except metadata.PackageNotFoundError:  # run from a source tree
        return "keyfob-webhooks"
