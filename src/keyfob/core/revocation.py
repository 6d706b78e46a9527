"""The set of recently revoked sessions that protected routes check (spec §3 item 4).

An access token cannot outlive ``revoked_at + access_ttl + leeway``, so an entry is
needed only until then; :meth:`RevokedSids.prune` drops the rest and the set stays
bounded by the revocations of one access-token lifetime.
"""

from __future__ import annotations

__all__ = ["RevokedSids"]


class RevokedSids:
    """sid → the time after which no access token of that session can be valid."""

    __slots__ = ("_until",)

    def __init__(self) -> None:
        self._until: dict[str, float] = {}

    def add(self, sid: str, until: float) -> None:
        if until > self._until.get(sid, 0.0):
            self._until[sid] = until

    def is_revoked(self, sid: str, now: float) -> bool:
        until = self._until.get(sid)
        return until is not None and now < until

    def prune(self, now: float) -> int:
        stale = [sid for sid, until in self._until.items() if until <= now]
        for sid in stale:
            del self._until[sid]
        return len(stale)

    def __len__(self) -> int:
        return len(self._until)

    def __repr__(self) -> str:
        return f"RevokedSids(<{len(self._until)} sids>)"
