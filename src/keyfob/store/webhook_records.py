"""What the store keeps for webhooks: endpoints, messages and their deliveries (the outbox).

Plain records; what they mean and how they are sent is :mod:`keyfob.webhooks`'.
"""

from __future__ import annotations

import dataclasses
import enum
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

__all__ = [
    "DELIVERY_COLUMNS",
    "ENDPOINT_COLUMNS",
    "DeliveryStatus",
    "WebhookDelivery",
    "WebhookEndpoint",
    "WebhookMessage",
    "delivery_row",
    "endpoint_row",
    "event_types_column",
    "parse_event_types",
    "without_lease",
]


class DeliveryStatus(enum.StrEnum):
    """Where a delivery stands: waiting (or retrying), accepted by the receiver, given up."""

    PENDING = "pending"
    DELIVERED = "delivered"
    FAILED = "failed"


@dataclass(frozen=True, slots=True)
class WebhookEndpoint:
    """A receiver of security events: where, which events, and its sealed signing secret."""

    id: str
    url: str
    #: The signing secret, sealed (keyfob.webhooks.sealing): never stored in clear.
    secret_sealed: bytes = field(repr=False)
    event_types: tuple[str, ...]
    created_at: float
    enabled: bool = True
    description: str = ""


@dataclass(frozen=True, slots=True)
class WebhookMessage:
    """One event as sent: ``message_id`` is the ``webhook-id``, the same on every retry."""

    message_id: str
    event_type: str
    #: The JSON body, exactly as signed and sent.
    payload: str


@dataclass(frozen=True, slots=True)
class WebhookDelivery:
    """One message for one endpoint, and how its attempts went (the delivery log)."""

    id: int
    endpoint_id: str
    message_id: str
    event_type: str
    payload: str = field(repr=False)
    status: DeliveryStatus
    attempts: int
    created_at: float
    next_attempt_at: float | None = None
    last_attempt_at: float | None = None
    last_status_code: int | None = None
    last_error: str = ""
    #: The token of the claim that holds this delivery (set only by a claim).
    lease: str | None = None


def event_types_column(event_types: tuple[str, ...]) -> str:
    """``("a", "b")`` as stored: ``",a,b,"``, so that one substring test finds ``,a,``."""
    return "," + ",".join(event_types) + ","


def parse_event_types(column: str) -> tuple[str, ...]:
    return tuple(t for t in column.split(",") if t)


def without_lease(delivery: WebhookDelivery) -> WebhookDelivery:
    """The delivery as the log shows it: the lease is only its claim holder's business."""
    return delivery if delivery.lease is None else dataclasses.replace(delivery, lease=None)


# --- rows of the SQL stores (SQLite tuples and asyncpg records unpack alike) ------------

#: The columns both SQL stores select for an endpoint, in this order.
ENDPOINT_COLUMNS = "id, url, secret_sealed, event_types, enabled, description, created_at"
#: The columns both SQL stores select for a delivery, in this order.
DELIVERY_COLUMNS = (
    "id, endpoint_id, message_id, event_type, payload, status, attempts, created_at, "
    "next_attempt_at, last_attempt_at, last_status_code, last_error, lease"
)


def endpoint_row(row: Sequence[Any]) -> WebhookEndpoint:
    id_, url, sealed, types, enabled, description, created_at = row
    return WebhookEndpoint(
        id=id_,
        url=url,
        secret_sealed=bytes(sealed),
        event_types=parse_event_types(types),
        created_at=float(created_at),
        enabled=bool(enabled),
        description=description,
    )


def delivery_row(row: Sequence[Any]) -> WebhookDelivery:
    (id_, endpoint_id, message_id, event_type, payload, status, attempts, created_at,
     next_at, last_at, code, error, lease) = row  # fmt: skip
    return WebhookDelivery(
        id=int(id_),
        endpoint_id=endpoint_id,
        message_id=message_id,
        event_type=event_type,
        payload=payload,
        status=DeliveryStatus(status),
        attempts=int(attempts),
        created_at=float(created_at),
        next_attempt_at=None if next_at is None else float(next_at),
        last_attempt_at=None if last_at is None else float(last_at),
        last_status_code=None if code is None else int(code),
        last_error=error,
        lease=lease,
    )
