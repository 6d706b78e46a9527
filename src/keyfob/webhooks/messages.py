"""Which security events become which webhook types, and the JSON body each one gets.

Types follow the Standard Webhooks advice (``resource.action``); the body is
``{"type", "timestamp", "data"}``. A message's ``webhook-id`` is made once, when the
event is recorded, and stays the same on every retry and for every endpoint, so a
receiver can drop duplicates by it.
"""

from __future__ import annotations

import json
import re
import secrets
from datetime import UTC, datetime
from typing import Final

from ..core.models import EventKind, SecurityEvent
from ..store.webhook_records import WebhookMessage

__all__ = [
    "ALL_EVENT_TYPES",
    "DEFAULT_EVENT_TYPES",
    "EVENT_TYPES",
    "TEST_EVENT_TYPE",
    "check_event_types",
    "event_type",
    "message_for",
    "ping_message",
]

#: The webhook type of each kind of security event.
EVENT_TYPES: Final[dict[EventKind, str]] = {
    EventKind.REUSE_DETECTED: "session.reuse_detected",
    EventKind.REVOKE: "session.revoked",
    EventKind.PASSWORD_CHANGED: "user.password_changed",
    EventKind.KEY_ROTATED: "signing_key.rotated",
    EventKind.LOGIN_THROTTLED: "login.throttled",
    EventKind.LOGIN_FAILED: "login.failed",
    EventKind.LOGIN_OK: "login.succeeded",
    EventKind.USER_CREATED: "user.created",
}
#: Sent only by ``keyfob webhooks test``, to the one endpoint it names.
TEST_EVENT_TYPE: Final = "webhook.test"
#: What an endpoint gets when it names no types: the events a person should hear of.
#: Logins are left out: every login would page someone.
DEFAULT_EVENT_TYPES: Final[tuple[str, ...]] = (
    "session.reuse_detected",
    "session.revoked",
    "user.password_changed",
    "signing_key.rotated",
    # The start of a login throttle (server/ratelimit.py): someone is guessing passwords.
    "login.throttled",
)
ALL_EVENT_TYPES: Final[tuple[str, ...]] = (*EVENT_TYPES.values(), TEST_EVENT_TYPE)

# Types are stored as ",a,b," and matched by substring: no commas, nothing surprising.
_TYPE_NAME = re.compile(r"^[a-z][a-z0-9_]*(\.[a-z][a-z0-9_]*)+$")


def event_type(kind: EventKind) -> str:
    """The webhook type of ``kind``; a kind without one is sent as ``security.<kind>``."""
    return EVENT_TYPES.get(kind) or f"security.{kind.value}"


def check_event_types(names: tuple[str, ...]) -> tuple[str, ...]:
    """``names`` without repeats, in order, or ValueError naming the unknown ones."""
    unknown = [n for n in names if n not in ALL_EVENT_TYPES or not _TYPE_NAME.match(n)]
    if unknown:
        raise ValueError(
            f"unknown event type(s) {', '.join(unknown)}; known: {', '.join(ALL_EVENT_TYPES)}"
        )
    return tuple(dict.fromkeys(names))


def message_for(event: SecurityEvent) -> WebhookMessage:
    """The webhook message of a recorded security event."""
    data: dict[str, object] = {
        "kind": event.kind.value,
        "at": event.at,
        "user_id": event.user_id,
        "sid": event.sid,
        "ip": event.ip or None,
        "detail": event.detail,
    }
    if event.kind is EventKind.REVOKE and event.detail:
        # The revoke detail starts with the RevokeReason ("admin", "admin sessions=3").
        data["reason"] = event.detail.split(" ", 1)[0]
    return _message(event_type(event.kind), event.at, data)


def ping_message(now: float) -> WebhookMessage:
    """What ``keyfob webhooks test`` sends."""
    return _message(TEST_EVENT_TYPE, now, {"message": "a test from keyfob webhooks test"})


def _message(type_: str, at: float, data: dict[str, object]) -> WebhookMessage:
    body = {
        "type": type_,
        "timestamp": datetime.fromtimestamp(at, UTC).isoformat().replace("+00:00", "Z"),
        "data": data,
    }
    payload = json.dumps(body, separators=(",", ":"), ensure_ascii=False)
    return WebhookMessage(
        message_id="msg_" + secrets.token_urlsafe(18), event_type=type_, payload=payload
    )
