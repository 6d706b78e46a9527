"""The memory store's webhook endpoints and outbox (a mixin of :class:`MemoryStore`).

Each operation runs without awaiting in the middle, so on one event loop it is atomic.
"""

from __future__ import annotations

import dataclasses

from ..exceptions import StoreIntegrityError
from .webhook_records import (
    DeliveryStatus,
    WebhookDelivery,
    WebhookEndpoint,
    WebhookMessage,
    without_lease,
)

__all__ = ["MemoryWebhooks"]

_FINISHED = (DeliveryStatus.DELIVERED, DeliveryStatus.FAILED)


class MemoryWebhooks:
    """Webhook endpoints and deliveries kept in dictionaries."""

    def __init__(self) -> None:
        self._webhook_endpoints: dict[str, WebhookEndpoint] = {}
        self._webhook_deliveries: dict[int, WebhookDelivery] = {}
        self._webhook_leased_until: dict[int, float] = {}
        self._webhook_next_id = 1

    async def enqueue_webhook(
        self, message: WebhookMessage, *, now: float, endpoint_id: str | None = None
    ) -> int:
        if endpoint_id is not None:
            chosen = [e for e in self._webhook_endpoints.values() if e.id == endpoint_id]
        else:
            chosen = [
                e
                for e in self._webhook_endpoints.values()
                if e.enabled and message.event_type in e.event_types
            ]
        for endpoint in chosen:
            delivery_id = self._webhook_next_id
            self._webhook_next_id += 1
            self._webhook_deliveries[delivery_id] = WebhookDelivery(
                id=delivery_id,
                endpoint_id=endpoint.id,
                message_id=message.message_id,
                event_type=message.event_type,
                payload=message.payload,
                status=DeliveryStatus.PENDING,
                attempts=0,
                created_at=now,
                next_attempt_at=now,
            )
        return len(chosen)

    async def add_webhook_endpoint(self, endpoint: WebhookEndpoint) -> None:
        if endpoint.id in self._webhook_endpoints:
            raise StoreIntegrityError(f"webhook endpoint {endpoint.id} exists already")
        self._webhook_endpoints[endpoint.id] = endpoint

    async def get_webhook_endpoint(self, endpoint_id: str) -> WebhookEndpoint | None:
        return self._webhook_endpoints.get(endpoint_id)

    async def list_webhook_endpoints(self) -> list[WebhookEndpoint]:
        return sorted(self._webhook_endpoints.values(), key=lambda e: e.created_at)

    async def set_webhook_endpoint_enabled(self, endpoint_id: str, enabled: bool) -> bool:
        endpoint = self._webhook_endpoints.get(endpoint_id)
        if endpoint is None:
            return False
        self._webhook_endpoints[endpoint_id] = dataclasses.replace(endpoint, enabled=enabled)
        return True

    async def remove_webhook_endpoint(self, endpoint_id: str) -> bool:
        if self._webhook_endpoints.pop(endpoint_id, None) is None:
            return False
        for d in [d for d in self._webhook_deliveries.values() if d.endpoint_id == endpoint_id]:
            del self._webhook_deliveries[d.id]
            self._webhook_leased_until.pop(d.id, None)
        return True

    async def claim_webhook_deliveries(
        self,
        *,
        now: float,
        limit: int,
        lease: str,
        lease_for: float,
        message_id: str | None = None,
    ) -> list[WebhookDelivery]:
        due = [
            d
            for d in self._webhook_deliveries.values()
            if d.status is DeliveryStatus.PENDING
            and d.next_attempt_at is not None
            and d.next_attempt_at <= now
            and self._webhook_leased_until.get(d.id, now) <= now
            and self._webhook_endpoints[d.endpoint_id].enabled
            and (message_id is None or d.message_id == message_id)
        ]
        due.sort(key=lambda d: (d.next_attempt_at, d.id))
        claimed = []
        for d in due[: max(limit, 0)]:
            held = dataclasses.replace(d, lease=lease)
            self._webhook_deliveries[d.id] = held
            self._webhook_leased_until[d.id] = now + lease_for
            claimed.append(held)
        return claimed

    async def finish_webhook_attempt(
        self,
        delivery_id: int,
        *,
        lease: str,
        status: DeliveryStatus,
        now: float,
        next_attempt_at: float | None,
        status_code: int | None,
        error: str,
    ) -> bool:
        d = self._webhook_deliveries.get(delivery_id)
        if d is None or d.lease != lease:
            return False
        self._webhook_deliveries[delivery_id] = dataclasses.replace(
            d,
            status=status,
            attempts=d.attempts + 1,
            last_attempt_at=now,
            next_attempt_at=next_attempt_at,
            last_status_code=status_code,
            last_error=error,
            lease=None,
        )
        self._webhook_leased_until.pop(delivery_id, None)
        return True

    async def list_webhook_deliveries(
        self,
        *,
        endpoint_id: str | None = None,
        status: DeliveryStatus | None = None,
        limit: int = 100,
        before_id: int | None = None,
    ) -> list[WebhookDelivery]:
        found = [
            without_lease(d)
            for d in sorted(self._webhook_deliveries.values(), key=lambda d: -d.id)
            if (endpoint_id is None or d.endpoint_id == endpoint_id)
            and (status is None or d.status == status)
            and (before_id is None or d.id < before_id)
        ]
        return found[: max(limit, 0)]

    async def purge_webhook_deliveries(self, *, finished_before: float, limit: int) -> int:
        old = [
            d.id
            for d in sorted(self._webhook_deliveries.values(), key=lambda d: d.id)
            if d.status in _FINISHED
            and d.last_attempt_at is not None
            and d.last_attempt_at < finished_before
        ][: max(limit, 0)]
        for delivery_id in old:
            del self._webhook_deliveries[delivery_id]
        return len(old)
