"""Authorization codes carried out through a store: make one, exchange it once (RFC 6749
§4.1, RFC 7636, RFC 9700 §2.1).

The rules are pure (:mod:`keyfob.core.authorization_codes`); this module adds the store
and the order of the steps. Issuing and revoking sessions is not this module's job: the
manager passes them in (``issue``, ``revoke``), as it does for :mod:`keyfob.sessions`.

An exchange:

1. the code's shape is checked (a made-up value never reaches the store), then its
   row is read: unknown (or purged) is ``invalid_grant``;
2. a code used before is **reuse**: the session issued from it is revoked (RFC 6749
   §4.1.2: the code may have been stolen, and whoever holds those tokens may be the
   thief), a ``reuse_detected`` event is recorded, and the answer is ``invalid_grant``;
3. the request is checked against the code (client, expiry, redirect URI, PKCE);
4. the session is issued, and only then is the code marked used with that session's id,
   in one conditional update: of concurrent exchanges one wins. A loser revokes the
   session it just issued and handles the code as reused. Because the sid is recorded
   only once its session exists, a replay always finds the session to revoke.

A failed exchange spends the code too (step 3 marks it used with no session). RFC 9700
§2.1.1 and §4.5 treat a code whose verifier, client or redirect URI does not match as a
code in the wrong hands: it must not stay usable for further guesses, and the real client
restarts the flow, which costs it one redirect.
"""

from __future__ import annotations

import inspect
import logging
from collections.abc import Awaitable, Callable
from typing import NoReturn

from .core.authorization_codes import (
    CODE_RETENTION,
    AuthorizationCode,
    CodeExchange,
    check_exchange,
    code_hash,
    new_authorization_code,
    new_code,
)
from .core.clients import Client
from .core.clock import Clock
from .core.models import DeviceInfo, EventKind, ReuseRule, RevokeReason, SecurityEvent, TokenPair
from .events import EventLog
from .exceptions import InvalidClient, InvalidGrant, StoreIntegrityError
from .store.protocol import AuthorizationCodeStore

__all__ = ["AuthorizationCodes"]

logger = logging.getLogger("keyfob")

#: Starts a session: (user_id, client_id, scope, device) -> its first tokens.
SessionIssuer = Callable[[str, str, str, DeviceInfo | None, float], Awaitable[TokenPair]]
#: Revokes one session for a reason; True if this call revoked it.
SessionRevoker = Callable[[str, RevokeReason], Awaitable[bool]]
#: Looks up a registered client (the built-in first-party one included).
ClientLookup = Callable[[str], Awaitable[Client | None]]
#: The hook to tell of a detected reuse, as it is when the reuse happens.
ReuseHookSource = Callable[[], Callable[[SecurityEvent], Awaitable[None] | None] | None]


class AuthorizationCodes:
    """Authorization codes in one store."""

    def __init__(
        self,
        store: AuthorizationCodeStore,
        events: EventLog,
        *,
        clock: Clock,
        get_client: ClientLookup,
        issue: SessionIssuer,
        revoke: SessionRevoker,
        reuse_hook: ReuseHookSource,
    ) -> None:
        self._store = store
        self._events = events
        self._clock = clock
        self._get_client = get_client
        self._issue = issue
        self._revoke = revoke
        self._reuse_hook = reuse_hook

    async def create(
        self,
        *,
        user_id: str,
        client_id: str,
        redirect_uri: str,
        scope: str,
        code_challenge: str | None,
        nonce: str | None,
        auth_time: float,
    ) -> str:
        """A single-use code bound to all of these; the text to put in the redirect.

        The request is checked against the client's registration again (the grant, the
        redirect URI, the scope, PKCE): :class:`InvalidClient`, :class:`UnauthorizedClient`,
        :class:`InvalidRequest` or :class:`InvalidScope` say what is wrong.
        """
        client = await self._get_client(client_id)
        if client is None:
            raise InvalidClient("unknown client")
        code = new_code()
        digest = code_hash(code)
        if digest is None:  # pragma: no cover - new_code() makes well-formed codes
            raise AssertionError("new_code() made a malformed code")
        record = new_authorization_code(
            code_hash=digest,
            client=client,
            user_id=user_id,
            redirect_uri=redirect_uri,
            scope=scope,
            code_challenge=code_challenge,
            nonce=nonce,
            auth_time=auth_time,
            now=self._clock.now(),
        )
        try:
            await self._store.create_authorization_code(record)
        except StoreIntegrityError:
            # The code's hash is 256 random bits, so the one constraint a new code can
            # break is its client's: removed by another process since this one read it.
            raise InvalidClient("the client is not registered") from None
        return code

    async def exchange(
        self,
        code: str,
        *,
        client: Client,
        redirect_uri: str | None,
        code_verifier: str | None,
        device: DeviceInfo | None = None,
    ) -> CodeExchange:
        """RFC 6749 §4.1.3 + RFC 7636 §4.6 (the steps are in the module docstring);
        :class:`InvalidGrant` on any mismatch."""
        digest = code_hash(code)
        if digest is None:
            raise InvalidGrant("the authorization code is malformed")
        record = await self._store.get_authorization_code(digest)
        if record is None:
            raise InvalidGrant("the authorization code is unknown or has expired")
        if record.used_at is not None:
            await self._reused(record, digest)
        try:
            check_exchange(
                record,
                client=client,
                redirect_uri=redirect_uri,
                code_verifier=code_verifier,
                now=self._clock.now(),
            )
        except InvalidGrant:
            # Spent by the failed attempt (module docstring); if someone used it in the
            # meantime, this presentation is a reuse like any other.
            if not await self._store.use_authorization_code(
                digest, now=self._clock.now(), sid=None
            ):
                await self._reused(record, digest)
            raise
        pair = await self._issue(
            record.user_id, record.client_id, record.scope, device, record.auth_time
        )
        sid = pair.session.sid
        if not await self._store.use_authorization_code(digest, now=self._clock.now(), sid=sid):
            # Another exchange of this code got in first: the tokens just made are not
            # handed out, and the winner's are revoked too.
            await self._revoke(sid, RevokeReason.CODE_REUSED)
            await self._reused(record, digest, also_revoked=1)
        return CodeExchange(pair=pair, nonce=record.nonce, auth_time=record.auth_time)

    async def _reused(
        self, record: AuthorizationCode, digest: bytes, *, also_revoked: int = 0
    ) -> NoReturn:
        """Revoke the session issued from a code presented again, record it, and raise."""
        current = await self._store.get_authorization_code(digest)
        sid = None if current is None else current.sid
        revoked = also_revoked
        if sid is not None and await self._revoke(sid, RevokeReason.CODE_REUSED):
            revoked += 1
        now = self._clock.now()
        event = await self._events.record(
            EventKind.REUSE_DETECTED,
            now,
            user_id=record.user_id,
            sid=sid,
            detail=(
                f"rule={ReuseRule.AUTHORIZATION_CODE.value} revoked={revoked} "
                f"client_id={record.client_id}"
            ),
        )
        logger.warning(
            "authorization code reused: client_id=%s sid=%s; %d session(s) revoked",
            record.client_id,
            sid,
            revoked,
        )
        await self._tell_hook(event)
        raise InvalidGrant(
            "the authorization code was already used; the tokens issued from it are revoked"
        )

    async def _tell_hook(self, event: SecurityEvent) -> None:
        hook = self._reuse_hook()
        if hook is None:
            return
        try:
            result = hook(event)
            if inspect.isawaitable(result):
                await result
        except Exception:
            # The session is already revoked; a failing hook must not change the answer.
            logger.exception("the reuse hook failed")

    async def purge(self, *, batch: int = 1000, max_batches: int | None = None) -> int:
        """Delete codes expired more than :data:`CODE_RETENTION` ago, in batches."""
        total = 0
        batches = 0
        while max_batches is None or batches < max_batches:
            n = await self._store.purge_authorization_codes(
                expired_before=self._clock.now() - CODE_RETENTION, limit=batch
            )
            total += n
            batches += 1
            if n < batch:
                break
        return total
