"""The security-event log (spec §7): what the manager's parts record, and reading it back."""

from __future__ import annotations

from collections.abc import Callable

from .core.models import EventKind, SecurityEvent
from .store.protocol import EventStore

__all__ = ["EventListener", "EventLog"]

#: Called with each event once it is recorded (metrics, a log line): must not block or fail.
EventListener = Callable[[SecurityEvent], None]


class EventLog:
    """Records security events in the store and lists them, newest first."""

    __slots__ = ("_listeners", "_store")

    def __init__(self, store: EventStore) -> None:
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
