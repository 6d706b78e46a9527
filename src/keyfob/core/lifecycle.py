"""The rules of spec §3 as pure functions that return decisions.

The manager asks the store for one conditional update per refresh
(``counter = counter + 1 WHERE counter = presented AND live``). Only when that
updates nothing does it read the session and ask :func:`classify_refresh_failure`
what the presented token was: the immediately previous one within grace, a reused
one, or a token of a session that is gone, revoked or expired.
"""

from __future__ import annotations

import hmac
from dataclasses import dataclass

from .models import DeviceInfo, ReuseRule, Session

__all__ = [
    "Expired",
    "GraceSuccessor",
    "Lifetimes",
    "NotFound",
    "OtherClient",
    "RefreshFailure",
    "Reused",
    "Revoked",
    "Unrecognised",
    "classify_refresh_failure",
    "idle_deadline",
    "new_session",
]


@dataclass(frozen=True, slots=True)
class Lifetimes:
    """How long sessions and the grace window last, in seconds."""

    idle: float
    absolute: float
    grace: float


def idle_deadline(now: float, absolute_expires_at: float, lifetimes: Lifetimes) -> float:
    """The idle deadline after activity at ``now``: it moves, the absolute one never does."""
    return min(now + lifetimes.idle, absolute_expires_at)


def new_session(
    *,
    sid: str,
    user_id: str,
    client_id: str,
    scope: str,
    secret_hash: bytes,
    now: float,
    lifetimes: Lifetimes,
    device: DeviceInfo,
    auth_time: float | None = None,
) -> Session:
    """A fresh session whose first refresh token has counter 0; ``auth_time`` when the user
    signed in before ``now`` (:attr:`Session.auth_time`)."""
    absolute = now + lifetimes.absolute
    return Session(
        sid=sid,
        user_id=user_id,
        client_id=client_id,
        scope=scope,
        secret_hash=secret_hash,
        counter=0,
        created_at=now,
        last_used_at=now,
        rotated_at=None,
        idle_expires_at=idle_deadline(now, absolute, lifetimes),
        absolute_expires_at=absolute,
        device=device,
        auth_time=auth_time,
    )


# The decisions. Each says what the presented token turned out to be.


@dataclass(frozen=True, slots=True)
class GraceSuccessor:
    """The immediately previous token within grace: hand out the current one again."""

    session: Session


@dataclass(frozen=True, slots=True)
class Reused:
    """A rotated-away token came back: revoke the family."""

    session: Session
    rule: ReuseRule


@dataclass(frozen=True, slots=True)
class Revoked:
    session: Session


@dataclass(frozen=True, slots=True)
class Expired:
    session: Session


@dataclass(frozen=True, slots=True)
class NotFound:
    """No such session (never existed here, or purged)."""


@dataclass(frozen=True, slots=True)
class Unrecognised:
    """The MAC was valid but the token does not belong to this session's history.

    A wrong secret hash means the MAC key leaked and someone minted a token for a
    real sid without its secret; a counter ahead of the store means the database was
    restored from an older backup. Neither is evidence of theft of this family, so
    neither may revoke it: a forgery never changes a real session (spec §3).
    """

    why: str


@dataclass(frozen=True, slots=True)
class OtherClient:
    """A genuine token of a session issued to another client (RFC 6749 §6: a refresh
    token is bound to its client). Refused, and nothing changes: neither a grace
    successor (that would hand the session to this client) nor a reuse alarm."""

    session: Session


RefreshFailure = GraceSuccessor | Reused | Revoked | Expired | NotFound | Unrecognised | OtherClient


def classify_refresh_failure(
    session: Session | None,
    *,
    presented_counter: int,
    presented_secret_hash: bytes,
    now: float,
    lifetimes: Lifetimes,
    presented_client_id: str | None = None,
) -> RefreshFailure:
    """Why the conditional rotation of ``presented_counter`` (by ``presented_client_id``,
    when the refresh was bound to a client) updated nothing."""
    if session is None:
        return NotFound()
    if not hmac.compare_digest(session.secret_hash, presented_secret_hash):
        return Unrecognised("secret does not match the session")
    if presented_counter > session.counter:
        return Unrecognised("counter is ahead of the store")
    if presented_client_id is not None and presented_client_id != session.client_id:
        return OtherClient(session)
    if session.revoked:
        return Revoked(session)
    if session.is_expired(now):
        return Expired(session)
    if presented_counter == session.counter:
        # The update should have matched; the session changed between the update and
        # the read (e.g. it expired at that instant). Report it as expired, not reused.
        return Expired(session)
    if presented_counter == session.counter - 1:
        if lifetimes.grace <= 0:
            return Reused(session, ReuseRule.PREVIOUS_GRACE_DISABLED)
        rotated_at = session.rotated_at if session.rotated_at is not None else session.last_used_at
        if now - rotated_at <= lifetimes.grace:
            return GraceSuccessor(session)
        return Reused(session, ReuseRule.PREVIOUS_OUTSIDE_GRACE)
    return Reused(session, ReuseRule.OLDER_TOKEN)
