"""The session lifecycle carried out through a store: issue, refresh, revoke, purge (spec §3).

The rules are pure (:mod:`keyfob.core.lifecycle`); this module does the I/O they decide
on. A refresh is one conditional update of the session row (``store.rotate``); only when
it matches nothing is the row read and the failure classified: the grace successor, reuse
(which revokes the family), revoked, expired or unknown.

Two things are not this module's to decide and come in as callables: how an access token
is signed (``mint_access_token``, the signing keys' business) and who must hear of a
revocation (``on_revoked``: the in-process verifier and the other instances).
"""

from __future__ import annotations

import inspect
import logging
import secrets
from collections.abc import Awaitable, Callable, Sequence

from .core import lifecycle
from .core.clients import scope_within
from .core.clock import Clock
from .core.models import DeviceInfo, EventKind, RevokeReason, SecurityEvent, Session, TokenPair
from .core.refresh_tokens import (
    ParsedRefreshToken,
    RefreshToken,
    RefreshTokenCodec,
    encode_sid,
    hash_secret,
    new_secret,
    new_sid,
)
from .events import EventLog
from .exceptions import (
    ClientMismatch,
    MalformedToken,
    SessionExpired,
    SessionNotFound,
    SessionRevoked,
    TokenReused,
)
from .settings import Settings
from .store.protocol import SessionStore

__all__ = ["MAX_DEVICE_FIELD", "ReuseHook", "Sessions", "clean_device"]

logger = logging.getLogger("keyfob")

#: Called with the ``reuse_detected`` event after the family has been revoked.
ReuseHook = Callable[[SecurityEvent], Awaitable[None] | None]
#: Signs the access token of a session at a time, with a narrower scope if given.
AccessTokenMinter = Callable[[Session, float, str | None], str]
#: Told of sessions revoked at a time, after the store revoked them.
RevocationListener = Callable[[Sequence[str], float], Awaitable[None]]

MAX_DEVICE_FIELD = 512


class Sessions:
    """Refresh-token families in one store."""

    def __init__(
        self,
        store: SessionStore,
        events: EventLog,
        *,
        codec: RefreshTokenCodec,
        settings: Settings,
        clock: Clock,
        mint_access_token: AccessTokenMinter,
        on_revoked: RevocationListener,
        on_reuse: ReuseHook | None = None,
    ) -> None:
        self._store = store
        self._events = events
        self._codec = codec
        self._settings = settings
        self._clock = clock
        self._mint_access_token = mint_access_token
        self._on_revoked = on_revoked
        self.on_reuse = on_reuse
        self.lifetimes = lifecycle.Lifetimes(
            idle=settings.idle_ttl, absolute=settings.absolute_ttl, grace=settings.grace
        )

    async def issue(
        self,
        user_id: str,
        *,
        client_id: str = "keyfob",
        scope: str = "",
        device: DeviceInfo | None = None,
        auth_time: float | None = None,
    ) -> TokenPair:
        """Start a session for an authenticated user: its first refresh and access tokens.

        ``auth_time``: when the user signed in, if before now (a code grant's sign-in).
        """
        now = self._clock.now()
        secret = new_secret()
        session = lifecycle.new_session(
            sid=encode_sid(new_sid()),
            user_id=user_id,
            client_id=client_id,
            scope=scope,
            secret_hash=hash_secret(secret),
            now=now,
            lifetimes=self.lifetimes,
            device=clean_device(device),
            auth_time=auth_time,
        )
        await self._store.create_session(session)
        return self._pair(session, secret, now)

    def parse_refresh_token(self, refresh_token: str | RefreshToken) -> ParsedRefreshToken:
        """Check a refresh token's shape and MAC, with no store access."""
        return self._codec.parse(refresh_token)

    async def refresh(
        self,
        refresh_token: str | RefreshToken | ParsedRefreshToken,
        *,
        client_id: str | None = None,
        scope: str | None = None,
    ) -> TokenPair:
        """Rotate a refresh token (spec §3); an :class:`InvalidGrant` subclass if refused.

        ``client_id``: only a session issued to that client rotates (RFC 6749 §6), in the
        same conditional update. ``scope``: the access token gets this narrower scope; the
        session keeps its own (the caller has checked it is within the session's).
        """
        # Check the MAC first: a forged token never reaches the store (spec §3).
        parsed = (
            refresh_token
            if isinstance(refresh_token, ParsedRefreshToken)
            else self._codec.parse(refresh_token)
        )
        now = self._clock.now()
        secret_hash = parsed.secret_hash
        if scope is not None:
            scope = await self._narrowed_scope(parsed, client_id, scope)
        session = await self._store.rotate(
            parsed.sid,
            counter=parsed.counter,
            secret_hash=secret_hash,
            now=now,
            idle_ttl=self.lifetimes.idle,
            client_id=client_id,
        )
        if session is not None:
            return self._pair(session, parsed.secret, now, scope)
        # The conditional update matched nothing: find out why (the slow path).
        current = await self._store.get_session(parsed.sid)
        decision = lifecycle.classify_refresh_failure(
            current,
            presented_counter=parsed.counter,
            presented_secret_hash=secret_hash,
            now=now,
            lifetimes=self.lifetimes,
            presented_client_id=client_id,
        )
        match decision:
            case lifecycle.GraceSuccessor(session=s):
                # The identical successor the winner got, not a new branch (spec §3).
                return self._pair(s, parsed.secret, now, scope)
            case lifecycle.OtherClient():
                raise ClientMismatch("the refresh token was issued to another client")
            case lifecycle.Reused(session=s, rule=rule):
                await self._handle_reuse(s, rule.value, now)
                raise TokenReused(
                    "this refresh token was already used; the session has been revoked",
                    rule=rule.value,
                    sid=s.sid,
                )
            case lifecycle.Revoked(session=s):
                raise SessionRevoked("the session has been revoked", reason=s.revoked_reason or "")
            case lifecycle.Expired():
                raise SessionExpired("the session has expired")
            case lifecycle.NotFound():
                raise SessionNotFound("the session does not exist")
            case lifecycle.Unrecognised(why=why):
                logger.warning("refresh token with a valid MAC was not recognised: %s", why)
                raise MalformedToken("the refresh token is not recognised")
        raise AssertionError(f"unhandled decision {decision!r}")  # pragma: no cover

    async def _narrowed_scope(
        self, parsed: ParsedRefreshToken, client_id: str | None, requested: str
    ) -> str | None:
        """The requested scope, checked against the session's before anything rotates,
        so an ``invalid_scope`` costs the client nothing. A session's scope never changes,
        so reading it first cannot race with the rotation. A token that is not this
        session's current family member is left to the refresh to classify."""
        current = await self._store.get_session(parsed.sid)
        if (
            current is None
            or not secrets.compare_digest(current.secret_hash, parsed.secret_hash)
            or (client_id is not None and current.client_id != client_id)
        ):
            return None
        tokens = scope_within(requested, current.scope.split())
        return " ".join(sorted(tokens))

    async def logout(
        self, refresh_token: str | RefreshToken, *, reason: RevokeReason = RevokeReason.LOGOUT
    ) -> bool:
        """Revoke the session a refresh token belongs to. True if this call revoked it.

        The token must be one keyfob minted (MAC checked); any token of the family,
        current or older, identifies the session, and none of them counts as reuse.
        """
        parsed = self._codec.parse(refresh_token)
        current = await self._store.get_session(parsed.sid)
        if current is None or not secrets.compare_digest(current.secret_hash, parsed.secret_hash):
            return False
        return await self.revoke_session(parsed.sid, reason=reason)

    async def revoke_session(
        self, sid: str, *, reason: RevokeReason = RevokeReason.ADMIN, user_id: str | None = None
    ) -> bool:
        """Revoke one session (only if it is ``user_id``'s, when given). True if revoked now."""
        now = self._clock.now()
        revoked = await self._store.revoke_session(
            sid, now=now, reason=reason.value, user_id=user_id
        )
        if revoked is None:
            return False
        await self._on_revoked([revoked.sid], now)
        await self._events.record(
            EventKind.REVOKE, now, user_id=revoked.user_id, sid=sid, detail=reason.value
        )
        return True

    async def revoke_user_sessions(
        self,
        user_id: str,
        *,
        reason: RevokeReason = RevokeReason.ADMIN,
        except_sid: str | None = None,
    ) -> list[str]:
        """Revoke every session of the user (but ``except_sid``) at once; return their sids."""
        now = self._clock.now()
        sids = await self._store.revoke_user_sessions(
            user_id, now=now, reason=reason.value, except_sid=except_sid
        )
        await self._on_revoked(sids, now)
        if sids:
            await self._events.record(
                EventKind.REVOKE,
                now,
                user_id=user_id,
                detail=f"{reason.value} sessions={len(sids)}",
            )
        return sids

    async def list_sessions(self, user_id: str) -> list[Session]:
        """The user's live sessions with device details, newest first."""
        return await self._store.list_sessions(user_id, now=self._clock.now())

    async def purge(self, *, batch: int = 1000, max_batches: int | None = None) -> int:
        """Delete expired and long-revoked sessions in batches; return how many went."""
        total = 0
        batches = 0
        while max_batches is None or batches < max_batches:
            now = self._clock.now()
            n = await self._store.purge_sessions(
                now=now, revoked_before=now - self._settings.revoked_retention, limit=batch
            )
            total += n
            batches += 1
            if n < batch:
                break
        return total

    def _pair(
        self, session: Session, secret: bytes, now: float, scope: str | None = None
    ) -> TokenPair:
        return TokenPair(
            access_token=self._mint_access_token(session, now, scope),
            refresh_token=self._codec.mint(session.sid, secret, session.counter),
            expires_in=int(self._settings.access_ttl),
            session=session,
            access_scope=scope,
        )

    async def _handle_reuse(self, session: Session, rule: str, now: float) -> None:
        policy = self._settings.reuse_policy
        reason = RevokeReason.REUSE_DETECTED.value
        if policy == "user":
            sids = await self._store.revoke_user_sessions(session.user_id, now=now, reason=reason)
        else:
            revoked = await self._store.revoke_session(session.sid, now=now, reason=reason)
            sids = [] if revoked is None else [revoked.sid]
        await self._on_revoked(sids, now)
        event = await self._events.record(
            EventKind.REUSE_DETECTED,
            now,
            user_id=session.user_id,
            sid=session.sid,
            ip=session.device.ip,
            detail=f"rule={rule} revoked={len(sids)} policy={policy}",
        )
        logger.warning(
            "refresh-token reuse detected: sid=%s rule=%s; %d session(s) revoked",
            session.sid,
            rule,
            len(sids),
        )
        if self.on_reuse is not None:
            try:
                result = self.on_reuse(event)
                if inspect.isawaitable(result):
                    await result
            except Exception:
                # The family is already revoked; a failing hook must not undo the answer.
                logger.exception("the reuse hook failed")


def clean_device(device: DeviceInfo | None) -> DeviceInfo:
    """The device details as stored: each field cut to a bounded length."""
    if device is None:
        return DeviceInfo()
    return DeviceInfo(
        user_agent=device.user_agent[:MAX_DEVICE_FIELD], ip=device.ip[:MAX_DEVICE_FIELD]
    )
