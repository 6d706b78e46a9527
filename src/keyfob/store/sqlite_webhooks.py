"""The SQLite store's webhook endpoints and outbox (a mixin of :class:`SQLiteStore`).

Claims run in one ``BEGIN IMMEDIATE`` transaction, so two processes on one file never
claim the same delivery (SQLite has one writer at a time). The worker polls; to keep an
idle poll from taking the write lock that refreshes need, a claim first looks for due
rows with a plain read and opens a write transaction only when it found some.
"""

# S608 flags SQL built with f-strings: here only this module's fixed clauses and the
# shared column lists are spliced in; every value is a bound parameter.
# ruff: noqa: S608

from __future__ import annotations

import sqlite3
from typing import TYPE_CHECKING, Any, Final

from ..exceptions import StoreIntegrityError
from .sqlite_database import execute, write_transaction
from .webhook_records import (
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
    from .sqlite_database import SQLiteDatabase

__all__ = ["SQLiteWebhooks"]

_ENQUEUE: Final = (
    "INSERT INTO webhook_deliveries (endpoint_id, message_id, event_type, payload, status, "
    "attempts, created_at, next_attempt_at) "
    "SELECT id, :message_id, :event_type, :payload, 'pending', 0, :now, :now "
    "FROM webhook_endpoints WHERE CASE WHEN :endpoint_id IS NULL "
    "THEN enabled = 1 AND instr(event_types, ',' || :event_type || ',') > 0 "
    "ELSE id = :endpoint_id END"
)
_DUE: Final = (
    "FROM webhook_deliveries d JOIN webhook_endpoints e ON e.id = d.endpoint_id "
    "WHERE d.status = 'pending' AND d.next_attempt_at <= :now "
    "AND (d.leased_until IS NULL OR d.leased_until <= :now) AND e.enabled = 1 "
    "AND (:message_id IS NULL OR d.message_id = :message_id)"
)
_SELECT_DUE: Final = f"SELECT d.id {_DUE} ORDER BY d.next_attempt_at, d.id LIMIT :limit"
_FINISH: Final = (
    "UPDATE webhook_deliveries SET status = :status, attempts = attempts + 1, "
    "last_attempt_at = :now, next_attempt_at = :next_attempt_at, "
    "last_status_code = :status_code, last_error = :error, lease = NULL, leased_until = NULL "
    "WHERE id = :id AND lease = :lease"
)


class SQLiteWebhooks:
    """Webhook operations on the store's :class:`SQLiteDatabase` (``self._db``)."""

    _db: SQLiteDatabase

    async def enqueue_webhook(
        self, message: WebhookMessage, *, now: float, endpoint_id: str | None = None
    ) -> int:
        params = {
            "message_id": message.message_id,
            "event_type": message.event_type,
            "payload": message.payload,
            "now": now,
            "endpoint_id": endpoint_id,
        }
        # One statement beside the event's insert, in the same group of writes.
        return await self._db.write(lambda conn: _rowcount(conn, _ENQUEUE, params))

    async def add_webhook_endpoint(self, endpoint: WebhookEndpoint) -> None:
        sql = f"INSERT INTO webhook_endpoints ({ENDPOINT_COLUMNS}) VALUES (?, ?, ?, ?, ?, ?, ?)"
        params = (
            endpoint.id,
            endpoint.url,
            endpoint.secret_sealed,
            event_types_column(endpoint.event_types),
            int(endpoint.enabled),
            endpoint.description,
            endpoint.created_at,
        )

        def insert(conn: sqlite3.Connection) -> None:
            try:
                execute(conn, sql, params)
            except sqlite3.IntegrityError:
                raise StoreIntegrityError(
                    f"webhook endpoint {endpoint.id} exists already"
                ) from None

        await self._db.run(insert)

    async def get_webhook_endpoint(self, endpoint_id: str) -> WebhookEndpoint | None:
        sql = f"SELECT {ENDPOINT_COLUMNS} FROM webhook_endpoints WHERE id = ?"
        found = await self._db.run(lambda conn: conn.execute(sql, (endpoint_id,)).fetchall())
        return endpoint_row(found[0]) if found else None

    async def list_webhook_endpoints(self) -> list[WebhookEndpoint]:
        sql = f"SELECT {ENDPOINT_COLUMNS} FROM webhook_endpoints ORDER BY created_at, rowid"
        found = await self._db.run(lambda conn: conn.execute(sql).fetchall())
        return [endpoint_row(row) for row in found]

    async def set_webhook_endpoint_enabled(self, endpoint_id: str, enabled: bool) -> bool:
        sql = "UPDATE webhook_endpoints SET enabled = ? WHERE id = ?"
        params = (int(enabled), endpoint_id)
        return await self._db.run(lambda conn: _rowcount(conn, sql, params)) == 1

    async def remove_webhook_endpoint(self, endpoint_id: str) -> bool:
        # The deliveries go with it (ON DELETE CASCADE; the store turns foreign keys on).
        sql = "DELETE FROM webhook_endpoints WHERE id = ?"
        return await self._db.run(lambda conn: _rowcount(conn, sql, (endpoint_id,))) == 1

    async def claim_webhook_deliveries(
        self,
        *,
        now: float,
        limit: int,
        lease: str,
        lease_for: float,
        message_id: str | None = None,
    ) -> list[WebhookDelivery]:
        params: dict[str, Any] = {"now": now, "limit": max(limit, 0), "message_id": message_id}
        if not await self._db.run(lambda conn: conn.execute(_SELECT_DUE, params).fetchall()):
            return []

        def claim(conn: sqlite3.Connection) -> list[WebhookDelivery]:
            # Chosen again inside the write lock: another process may have claimed some.
            ids = [row[0] for row in conn.execute(_SELECT_DUE, params).fetchall()]
            if not ids:
                return []
            marks = ", ".join("?" * len(ids))
            update = (
                f"UPDATE webhook_deliveries SET lease = ?, leased_until = ? WHERE id IN ({marks})"
            )
            execute(conn, update, [lease, now + lease_for, *ids])
            select = (
                f"SELECT {DELIVERY_COLUMNS} FROM webhook_deliveries WHERE id IN ({marks}) "
                "ORDER BY next_attempt_at, id"
            )
            return [delivery_row(row) for row in conn.execute(select, ids).fetchall()]

        return await self._db.run(lambda conn: write_transaction(conn, claim))

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
        params = {
            "id": delivery_id,
            "lease": lease,
            "status": status.value,
            "now": now,
            "next_attempt_at": next_attempt_at,
            "status_code": status_code,
            "error": error,
        }
        return await self._db.run(lambda conn: _rowcount(conn, _FINISH, params)) == 1

    async def list_webhook_deliveries(
        self,
        *,
        endpoint_id: str | None = None,
        status: DeliveryStatus | None = None,
        limit: int = 100,
        before_id: int | None = None,
    ) -> list[WebhookDelivery]:
        sql = (
            f"SELECT {DELIVERY_COLUMNS} FROM webhook_deliveries "
            "WHERE (:endpoint_id IS NULL OR endpoint_id = :endpoint_id) "
            "AND (:status IS NULL OR status = :status) "
            "AND (:before_id IS NULL OR id < :before_id) ORDER BY id DESC LIMIT :limit"
        )
        params = {
            "endpoint_id": endpoint_id,
            "status": None if status is None else status.value,
            "before_id": before_id,
            "limit": max(limit, 0),
        }
        found = await self._db.run(lambda conn: conn.execute(sql, params).fetchall())
        # The lease is the claim holder's business, not the log's.
        return [without_lease(delivery_row(row)) for row in found]

    async def purge_webhook_deliveries(self, *, finished_before: float, limit: int) -> int:
        sql = (
            "DELETE FROM webhook_deliveries WHERE id IN (SELECT id FROM webhook_deliveries "
            "WHERE status IN ('delivered', 'failed') AND last_attempt_at < ? LIMIT ?)"
        )
        params = (finished_before, max(limit, 0))
        return await self._db.run(lambda conn: _rowcount(conn, sql, params))


def _rowcount(conn: sqlite3.Connection, sql: str, params: Any) -> int:
    cursor = conn.execute(sql, params)
    try:
        return cursor.rowcount
    finally:
        cursor.close()
