"""The PostgreSQL store's webhook endpoints and outbox (a mixin of :class:`PostgresStore`).

Several instances share the outbox. A claim is one statement: it picks due rows with
``FOR UPDATE SKIP LOCKED`` (a row another instance is claiming is passed over, not
waited for) and stamps them with a lease token and a deadline; a claimed row is skipped
by every other claim until its lease runs out, and only its lease holder can record
the attempt. The worker bounds each attempt well inside the lease, so an attempt is
never made twice unless its instance died mid-attempt.
"""

# S608 flags SQL built with f-strings: here only the shared column lists are spliced in;
# every value is a bound parameter.
# ruff: noqa: S608

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator
from typing import TYPE_CHECKING, Any, Final

from ..webhook_records import (
    DELIVERY_COLUMNS,
    ENDPOINT_COLUMNS,
    DeliveryStatus,
    WebhookDelivery,
    WebhookEndpoint,
    WebhookMessage,
    delivery_row,
    endpoint_row,
    event_types_column,
    without_lease,
)

if TYPE_CHECKING:
    from .pool import Connection

__all__ = ["PostgresWebhooks"]

_ENQUEUE: Final = (
    "INSERT INTO webhook_deliveries (endpoint_id, message_id, event_type, payload, status, "
    "attempts, created_at, next_attempt_at) "
    "SELECT id, $1, $2, $3, 'pending', 0, $4, $4 FROM webhook_endpoints "
    "WHERE CASE WHEN $5::text IS NULL "
    "THEN enabled AND strpos(event_types, ',' || $2 || ',') > 0 ELSE id = $5 END"
)
_INSERT_ENDPOINT: Final = (
    f"INSERT INTO webhook_endpoints ({ENDPOINT_COLUMNS}) VALUES ($1, $2, $3, $4, $5, $6, $7)"
)
_CLAIM: Final = (
    "UPDATE webhook_deliveries SET lease = $3, leased_until = $1 + $4 WHERE id IN ("
    "SELECT d.id FROM webhook_deliveries d JOIN webhook_endpoints e ON e.id = d.endpoint_id "
    "WHERE d.status = 'pending' AND d.next_attempt_at <= $1 "
    "AND (d.leased_until IS NULL OR d.leased_until <= $1) AND e.enabled "
    "AND ($5::text IS NULL OR d.message_id = $5) "
    "ORDER BY d.next_attempt_at, d.id LIMIT $2 FOR UPDATE OF d SKIP LOCKED) "
    f"RETURNING {DELIVERY_COLUMNS}"
)
_FINISH: Final = (
    "UPDATE webhook_deliveries SET status = $3, attempts = attempts + 1, "
    "last_attempt_at = $4, next_attempt_at = $5, last_status_code = $6, last_error = $7, "
    "lease = NULL, leased_until = NULL WHERE id = $1 AND lease = $2"
)
_LIST_DELIVERIES: Final = (
    f"SELECT {DELIVERY_COLUMNS} FROM webhook_deliveries "
    "WHERE ($1::text IS NULL OR endpoint_id = $1) AND ($2::text IS NULL OR status = $2) "
    "AND ($3::bigint IS NULL OR id < $3) ORDER BY id DESC LIMIT $4"
)
_PURGE_DELIVERIES: Final = (
    "DELETE FROM webhook_deliveries WHERE id IN (SELECT id FROM webhook_deliveries "
    "WHERE status IN ('delivered', 'failed') AND last_attempt_at < $1 LIMIT $2 "
    "FOR UPDATE SKIP LOCKED)"
)


class PostgresWebhooks:
    """Webhook operations over the store's pooled connections."""

    if TYPE_CHECKING:

        def _connection(
            self, doing: str = "a query"
        ) -> contextlib.AbstractAsyncContextManager[Connection]: ...

    @contextlib.asynccontextmanager
    async def _webhook_connection(self) -> AsyncIterator[Connection]:
        async with self._connection("a webhook query") as conn:
            yield conn

    async def _webhook_fetch(self, query: str, *args: object) -> list[Any]:
        async with self._webhook_connection() as conn:
            return list(await conn.fetch(query, *args))

    async def _webhook_execute(self, query: str, *args: object) -> int:
        async with self._webhook_connection() as conn:
            status: str = await conn.execute(query, *args)
        # "INSERT 0 3", "UPDATE 1", "DELETE 2": the count is the last word.
        return int(status.rsplit(" ", 1)[-1])

    async def enqueue_webhook(
        self, message: WebhookMessage, *, now: float, endpoint_id: str | None = None
    ) -> int:
        return await self._webhook_execute(
            _ENQUEUE,
            message.message_id,
            message.event_type,
            message.payload,
            float(now),
            endpoint_id,
        )

    async def add_webhook_endpoint(self, endpoint: WebhookEndpoint) -> None:
        # A taken id is a unique violation, which the store reports as StoreIntegrityError.
        await self._webhook_execute(
            _INSERT_ENDPOINT,
            endpoint.id,
            endpoint.url,
            endpoint.secret_sealed,
            event_types_column(endpoint.event_types),
            endpoint.enabled,
            endpoint.description,
            float(endpoint.created_at),
        )

    async def get_webhook_endpoint(self, endpoint_id: str) -> WebhookEndpoint | None:
        sql = f"SELECT {ENDPOINT_COLUMNS} FROM webhook_endpoints WHERE id = $1"
        found = await self._webhook_fetch(sql, endpoint_id)
        return endpoint_row(found[0]) if found else None

    async def list_webhook_endpoints(self) -> list[WebhookEndpoint]:
        sql = f"SELECT {ENDPOINT_COLUMNS} FROM webhook_endpoints ORDER BY created_at, id"
        return [endpoint_row(row) for row in await self._webhook_fetch(sql)]

    async def set_webhook_endpoint_enabled(self, endpoint_id: str, enabled: bool) -> bool:
        sql = "UPDATE webhook_endpoints SET enabled = $2 WHERE id = $1"
        return await self._webhook_execute(sql, endpoint_id, enabled) == 1

    async def remove_webhook_endpoint(self, endpoint_id: str) -> bool:
        # The deliveries go with it (ON DELETE CASCADE).
        sql = "DELETE FROM webhook_endpoints WHERE id = $1"
        return await self._webhook_execute(sql, endpoint_id) == 1

    async def claim_webhook_deliveries(
        self,
        *,
        now: float,
        limit: int,
        lease: str,
        lease_for: float,
        message_id: str | None = None,
    ) -> list[WebhookDelivery]:
        found = await self._webhook_fetch(
            _CLAIM, float(now), max(limit, 0), lease, float(lease_for), message_id
        )
        claimed = [delivery_row(row) for row in found]
        claimed.sort(key=lambda d: (d.next_attempt_at or 0.0, d.id))
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
        changed = await self._webhook_execute(
            _FINISH,
            delivery_id,
            lease,
            status.value,
            float(now),
            None if next_attempt_at is None else float(next_attempt_at),
            status_code,
            error,
        )
        return changed == 1

    async def list_webhook_deliveries(
        self,
        *,
        endpoint_id: str | None = None,
        status: DeliveryStatus | None = None,
        limit: int = 100,
        before_id: int | None = None,
    ) -> list[WebhookDelivery]:
        found = await self._webhook_fetch(
            _LIST_DELIVERIES,
            endpoint_id,
            None if status is None else status.value,
            before_id,
            max(limit, 0),
        )
        return [without_lease(delivery_row(row)) for row in found]

    async def purge_webhook_deliveries(self, *, finished_before: float, limit: int) -> int:
        return await self._webhook_execute(_PURGE_DELIVERIES, float(finished_before), max(limit, 0))
