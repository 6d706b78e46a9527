"""The security-event log (spec §7): what the manager's parts record, and reading it back.

Recording an event also puts it in the webhook outbox: one more statement that adds a
pending delivery for each enabled endpoint subscribed to its type (none when there are
no endpoints). The HTTP calls happen later, in the worker of :mod:`keyfob.webhooks`, so
a slow or dead receiver never slows the request that caused the event.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Protocol

from .core.models import EventKind, SecurityEvent
from .store.protocol import EventStore, WebhookOutbox
from .webhooks.messages import message_for

__all__ = ["EventListener", "EventLog"]

#: Called with each event once it is recorded (metrics, a log line): must not block or fail.
EventListener = Callable[[SecurityEvent], None]


class _EventStore(EventStore, WebhookOutbox, Protocol):
    """What the event log needs of the store: the event table and the webhook outbox."""


class EventLog:
    """Records security events in the store and lists them, newest first."""

    __slots__ = ("_listeners", "_store")

    def __init__(self, store: _EventStore) -> None:
        self._store = store
        self._listeners: list[EventListener] = []

    def add_listener(self, listener: EventListener) -> None:
        """Call ``listener`` with every event recorded from now on."""
        self._listeners.append(listener)

    async def record(
        self,
        kind: EventKind,
        at: float,
        *,
        user_id: str | None = None,
        sid: str | None = None,
        ip: str = "",
        detail: str = "",
    ) -> SecurityEvent:
        event = SecurityEvent(kind=kind, at=at, user_id=user_id, sid=sid, ip=ip, detail=detail)
        await self._store.record_event(event)
        await self._store.enqueue_webhook(message_for(event), now=at)
        for listener in self._listeners:
            listener(event)
        return event

    async def list(
        self,
        *,
        limit: int = 100,
        kind: EventKind | None = None,
        user_id: str | None = None,
        sid: str | None = None,
        before_id: int | None = None,
    ) -> list[SecurityEvent]:
        return await self._store.list_events(
            limit=limit, kind=kind, user_id=user_id, sid=sid, before_id=before_id
        )
