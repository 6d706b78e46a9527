"""Each recorded security event as one ``keyfob.security`` log line and in the metrics.

Listens on the manager's :class:`~keyfob.events.EventLog`: an event is logged and
counted once the store has recorded it. Its fields are the event's own (kind, user id,
sid, client address, detail); the details keyfob writes name rules, reasons and key ids,
never a token or a password.
"""

from __future__ import annotations

import logging

from ..core.models import EventKind, SecurityEvent
from .metrics import Recorder

__all__ = ["SecurityEventObserver"]

security_logger = logging.getLogger("keyfob.security")

_LEVELS = {
    EventKind.REUSE_DETECTED: logging.WARNING,
    EventKind.LOGIN_FAILED: logging.WARNING,
}


class SecurityEventObserver:
    """An :data:`~keyfob.events.EventListener`: log the event, count it in ``recorder``."""

    def __init__(self, recorder: Recorder | None) -> None:
        self.recorder = recorder

    def __call__(self, event: SecurityEvent) -> None:
        if self.recorder is not None:
            _count(self.recorder, event)
        level = _LEVELS.get(event.kind, logging.INFO)
        if security_logger.isEnabledFor(level):
            fields = {
                "event": "security",
                "kind": event.kind.value,
                "user_id": event.user_id,
                "sid": event.sid,
                "client": event.ip or None,
                "detail": event.detail,
            }
            security_logger.log(
                level, "security event %s %s", event.kind.value, event.detail,
                extra={"keyfob": fields},
            )  # fmt: skip


def _count(recorder: Recorder, event: SecurityEvent) -> None:
    kind = event.kind
    if kind is EventKind.LOGIN_OK:
        recorder.count("keyfob_logins_total", ("ok",))
    elif kind is EventKind.LOGIN_FAILED:
        recorder.count("keyfob_logins_total", ("failed",))
    elif kind is EventKind.REUSE_DETECTED:
        # detail: "rule=<rule> revoked=<n> policy=<policy>" (sessions.py)
        fields = _detail_fields(event.detail)
        recorder.count("keyfob_reuse_detections_total", (fields.get("rule", "unknown"),))
        revoked = fields.get("revoked", "0")
        if revoked.isdigit() and int(revoked) > 0:
            recorder.count("keyfob_revocations_total", ("reuse_detected",), int(revoked))
    elif kind is EventKind.REVOKE:
        # detail: "<reason>" or "<reason> sessions=<n>" (sessions.py)
        reason, _, rest = event.detail.partition(" ")
        count = _detail_fields(rest).get("sessions", "1")
        recorder.count(
            "keyfob_revocations_total", (reason or "unknown",), int(count) if count.isdigit() else 1
        )


def _detail_fields(detail: str) -> dict[str, str]:
    return dict(part.split("=", 1) for part in detail.split() if "=" in part)
