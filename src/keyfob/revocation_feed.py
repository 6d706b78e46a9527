"""The revocation feed: how server instances tell each other about revocations.

Every instance already learns of the others' revocations from the store (its
revocation marker, and the periodic resync). A feed is a second, optional path: the
:class:`~keyfob.SessionManager` publishes the sids of every revocation it makes, and
when the feed's :attr:`~RevocationFeed.marker` moves (another instance announced some),
the manager resyncs from the store on its next fresh verification. The feed only says
*look*; the store stays the truth. :class:`keyfob.server.fanout.RevocationFanout`
(Redis pub/sub) is the implementation keyfob ships.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Protocol

__all__ = ["RevocationFeed"]


class RevocationFeed(Protocol):
    """Announces this instance's revocations to the others and hears theirs."""

    @property
    def marker(self) -> object:
        """Changes whenever another instance announced revocations. No I/O."""
        ...

    async def publish(self, sids: Sequence[str]) -> None:
        """Announce revoked sessions (never an empty list); best effort, never raises."""
        ...
