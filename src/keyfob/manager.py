"""SessionManager: carries out the core's decisions through a store.

The rules live in :mod:`keyfob.core.lifecycle`; this module adds only what needs I/O:
the store calls, the clock, security events and the reuse hook. Every edge (server,
framework integrations, CLI) talks to this class.
"""

from __future__ import annotations

import inspect
import logging
import secrets
from collections.abc import Awaitable, Callable, Iterable

from .core import lifecycle
from .core.access_tokens import AccessTokenSigner, AccessTokenVerifier
from .core.clock import Clock, SystemClock
from .core.keys import (
    KeyRecord,
    KeySet,
    SigningKey,
    derive_kek,
    load_key,
    plan_rotation,
    purge_expired,
)
from .core.models import (
    DeviceInfo,
    EventKind,
    Principal,
    RevokeReason,
    SecurityEvent,
    Session,
    TokenPair,
    User,
)
from .core.passwords import PasswordHasher, PasswordPolicy
from .core.refresh_tokens import (
    ParsedRefreshToken,
    RefreshToken,
    RefreshTokenCodec,
    derive_mac_key,
    encode_sid,
    hash_secret,
    new_secret,
    new_sid,
)
from .core.revocation import RevokedSids
from .core.token_cache import VerifiedTokenCache
from .exceptions import (
    AccessTokenRevoked,
    AuthenticationFailed,
    BadSignature,
    ConfigurationError,
    MalformedToken,
    SessionExpired,
    SessionNotFound,
    SessionRevoked,
    TokenReused,
    UserError,
    UserNotFound,
)
from .revocation_feed import RevocationFeed
from .settings import Settings, load_deployment_secret
from .store.protocol import Store

__all__ = ["ReuseHook", "SessionManager"]

logger = logging.getLogger("keyfob")

#: Called with the ``reuse_detected`` event after the family has been revoked.
ReuseHook = Callable[[SecurityEvent], Awaitable[None] | None]

#: The least each revocation resync re-reads before the previous one, in seconds: longer
#: than a revocation can take between reading the clock and committing with the
#: PostgreSQL store's defaults (5 s waiting for a pooled connection, a 5 s statement
#: timeout and the client's extra second).
_RESYNC_OVERLAP = 15.0

_MAX_USERNAME = 150
_MAX_DEVICE_FIELD = 512


class SessionManager:
    """Log in, refresh, revoke and verify, per spec §3.

    ``await manager.start()`` opens the store, applies migrations and makes sure a
    signing key exists; ``await manager.close()`` closes the store.
    """

    def __init__(
        self,
        settings: Settings,
        store: Store,
        *,
        clock: Clock | None = None,
        on_reuse: ReuseHook | None = None,
        revocation_feed: RevocationFeed | None = None,
    ) -> None:
        self.settings = settings
        self.store = store
        self.clock: Clock = clock or SystemClock()
        self.on_reuse = on_reuse
        self.revocation_feed = revocation_feed
        secrets_newest_first = load_deployment_secret(settings)
        self._codec = RefreshTokenCodec([derive_mac_key(s) for s in secrets_newest_first])
        self._keks = [derive_kek(s) for s in secrets_newest_first]
        self._lifetimes = lifecycle.Lifetimes(
            idle=settings.idle_ttl, absolute=settings.absolute_ttl, grace=settings.grace
        )
        self._hasher = PasswordHasher(settings.password_profile)
        self._policy = PasswordPolicy(min_length=settings.password_min_length)
        self._signer = AccessTokenSigner(
            issuer=settings.issuer, audience=settings.effective_audience, ttl=settings.access_ttl
        )
        self._keys = KeySet([])
        self._verifier = AccessTokenVerifier(
            self._keys,
            issuer=settings.issuer,
            audience=settings.effective_audience,
            leeway=settings.leeway,
        )
        self.revoked = RevokedSids()
        self._verified: VerifiedTokenCache[Principal] = VerifiedTokenCache(
            settings.verified_token_cache_size
        )
        self._revocations_synced_at: float | None = None
        self._revocation_marker: object = None
        self._keys_loaded_at = float("-inf")

    def __repr__(self) -> str:
        return f"SessionManager(store={self.store!r})"

    # lifecycle of the manager itself

    async def start(self) -> None:
        """Open the store (applying migrations) and load or create the signing key."""
        await self.store.open()
        await self.reload_keys()
        if self._keys.needs_key(self.clock.now()):
            await self.rotate_signing_key()
        await self.sync_revocations()

    async def close(self) -> None:
        await self.store.close()

    async def __aenter__(self) -> SessionManager:
        await self.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    # users

    async def register(self, username: str, password: str) -> User:
        """Create an account; :class:`WeakPassword` or :class:`UserExists` say why not."""
        username = _clean_username(username)
        self._policy.check(password, username=username)
        now = self.clock.now()
        user = User(
            id=secrets.token_urlsafe(12),
            username=username,
            password_hash=self._hasher.hash(password),
            created_at=now,
        )
        await self.store.create_user(user)
        await self._event(EventKind.USER_CREATED, now, user_id=user.id)
        return user

    async def authenticate(self, username: str, password: str, *, ip: str = "") -> User:
        """The user whose password this is, or :class:`AuthenticationFailed`.

        Unknown users cost the same argon2 work as known ones (no enumeration by timing).
        """
        now = self.clock.now()
        user = None
        if isinstance(username, str) and 0 < len(username) <= _MAX_USERNAME:
            user = await self.store.get_user_by_name(username.strip())
        if not isinstance(password, str):
            password = ""
        if user is None:
            self._hasher.dummy_verify(password)
            await self._event(EventKind.LOGIN_FAILED, now, ip=ip, detail="unknown user")
            raise AuthenticationFailed("wrong username or password")
        if not self._hasher.verify(user.password_hash, password):
            await self._event(
                EventKind.LOGIN_FAILED, now, user_id=user.id, ip=ip, detail="wrong password"
            )
            raise AuthenticationFailed("wrong username or password")
        if self._hasher.needs_rehash(user.password_hash):
            await self.store.set_password_hash(user.id, self._hasher.hash(password))
        return user

    async def get_user(self, user_id: str) -> User | None:
        return await self.store.get_user(user_id)

    async def get_user_by_name(self, username: str) -> User | None:
        return await self.store.get_user_by_name(username)

    async def list_users(self, *, limit: int = 100, offset: int = 0) -> list[User]:
        return await self.store.list_users(limit=limit, offset=offset)

    async def change_password(
        self, user_id: str, old_password: str, new_password: str, *, keep_sid: str | None = None
    ) -> list[str]:
        """Set a new password and revoke every other session of the user; return their sids."""
        user = await self.store.get_user(user_id)
        if user is None:
            raise UserNotFound("no such user")
        if not self._hasher.verify(user.password_hash, old_password):
            raise AuthenticationFailed("the current password is wrong")
        self._policy.check(new_password, username=user.username)
        await self.store.set_password_hash(user.id, self._hasher.hash(new_password))
        now = self.clock.now()
        await self._event(EventKind.PASSWORD_CHANGED, now, user_id=user.id, sid=keep_sid)
        return await self.revoke_user_sessions(
            user.id, reason=RevokeReason.PASSWORD_CHANGE, except_sid=keep_sid
        )

    # sessions

    async def login(
        self,
        username: str,
        password: str,
        *,
        client_id: str = "keyfob",
        scope: str = "",
        device: DeviceInfo | None = None,
    ) -> TokenPair:
        """Check the password and start a session: a refresh token and an access token."""
        device = _clean_device(device)
        user = await self.authenticate(username, password, ip=device.ip)
        pair = await self.issue(user.id, client_id=client_id, scope=scope, device=device)
        await self._event(
            EventKind.LOGIN_OK,
            self.clock.now(),
            user_id=user.id,
            sid=pair.session.sid,
            ip=device.ip,
        )
        return pair

    async def issue(
        self,
        user_id: str,
        *,
        client_id: str = "keyfob",
        scope: str = "",
        device: DeviceInfo | None = None,
    ) -> TokenPair:
        """Start a session for an already authenticated user (e.g. after an OAuth code)."""
        now = self.clock.now()
        secret = new_secret()
        session = lifecycle.new_session(
            sid=encode_sid(new_sid()),
            user_id=user_id,
            client_id=client_id,
            scope=scope,
            secret_hash=hash_secret(secret),
            now=now,
            lifetimes=self._lifetimes,
            device=_clean_device(device),
        )
        await self.store.create_session(session)
        return self._pair(session, secret, now)

    def parse_refresh_token(self, refresh_token: str | RefreshToken) -> ParsedRefreshToken:
        """Check a refresh token's shape and MAC, with no store access.

        Edges use it to key per-session limits before the store is touched; pass the
        result to :meth:`refresh` so the MAC is not checked twice. A forged token raises
        :class:`MalformedToken` here, so it cannot spend a real session's budget.
        """
        return self._codec.parse(refresh_token)

    async def refresh(self, refresh_token: str | RefreshToken | ParsedRefreshToken) -> TokenPair:
        """Rotate a refresh token (spec §3).

        Raises an :class:`InvalidGrant` subclass: :class:`MalformedToken` before any
        store access, :class:`TokenReused` after revoking the family, or
        :class:`SessionRevoked` / :class:`SessionExpired` / :class:`SessionNotFound`.
        """
        # Check the MAC first: a forged token never reaches the store (spec §3).
        parsed = (
            refresh_token
            if isinstance(refresh_token, ParsedRefreshToken)
            else self._codec.parse(refresh_token)
        )
        now = self.clock.now()
        secret_hash = parsed.secret_hash
        session = await self.store.rotate(
            parsed.sid,
            counter=parsed.counter,
            secret_hash=secret_hash,
            now=now,
            idle_ttl=self._lifetimes.idle,
        )
        if session is not None:
            return self._pair(session, parsed.secret, now)
        # The conditional update matched nothing: find out why (the slow path).
        current = await self.store.get_session(parsed.sid)
        decision = lifecycle.classify_refresh_failure(
            current,
            presented_counter=parsed.counter,
            presented_secret_hash=secret_hash,
            now=now,
            lifetimes=self._lifetimes,
        )
        match decision:
            case lifecycle.GraceSuccessor(session=s):
                # The identical successor the winner got, not a new branch (spec §3).
                return self._pair(s, parsed.secret, now)
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

    async def logout(self, refresh_token: str | RefreshToken) -> bool:
        """Revoke the session a refresh token belongs to. True if this call revoked it.

        The token must be one keyfob minted (MAC checked); any token of the family,
        current or older, identifies the session.
        """
        parsed = self._codec.parse(refresh_token)
        current = await self.store.get_session(parsed.sid)
        if current is None or not secrets.compare_digest(current.secret_hash, parsed.secret_hash):
            return False
        return await self.revoke_session(parsed.sid, reason=RevokeReason.LOGOUT)

    async def revoke_session(
        self, sid: str, *, reason: RevokeReason = RevokeReason.ADMIN, user_id: str | None = None
    ) -> bool:
        """Revoke one session (only if it is ``user_id``'s, when given). True if revoked now."""
        now = self.clock.now()
        revoked = await self.store.revoke_session(
            sid, now=now, reason=reason.value, user_id=user_id
        )
        if revoked is None:
            return False
        if self.revocation_feed is not None:
            await self.revocation_feed.publish([revoked.sid])
        self._remember_revoked(revoked.sid, now)
        await self._event(
            EventKind.REVOKE, now, user_id=revoked.user_id, sid=sid, detail=reason.value
        )
        return True

    async def logout_all(self, user_id: str) -> list[str]:
        """Revoke every session of the user; return their sids."""
        return await self.revoke_user_sessions(user_id, reason=RevokeReason.LOGOUT_ALL)

    async def revoke_user_sessions(
        self,
        user_id: str,
        *,
        reason: RevokeReason = RevokeReason.ADMIN,
        except_sid: str | None = None,
    ) -> list[str]:
        """Revoke every session of the user (but ``except_sid``) at once; return their sids."""
        now = self.clock.now()
        sids = await self.store.revoke_user_sessions(
            user_id, now=now, reason=reason.value, except_sid=except_sid
        )
        if sids and self.revocation_feed is not None:
            await self.revocation_feed.publish(sids)
        for sid in sids:
            self._remember_revoked(sid, now)
        if sids:
            await self._event(
                EventKind.REVOKE,
                now,
                user_id=user_id,
                detail=f"{reason.value} sessions={len(sids)}",
            )
        return sids

    async def list_sessions(self, user_id: str) -> list[Session]:
        """The user's live sessions with device details, newest first."""
        return await self.store.list_sessions(user_id, now=self.clock.now())

    async def purge(self, *, batch: int = 1000, max_batches: int | None = None) -> int:
        """Delete expired and long-revoked sessions in batches; return how many went."""
        total = 0
        batches = 0
        while max_batches is None or batches < max_batches:
            now = self.clock.now()
            n = await self.store.purge_sessions(
                now=now, revoked_before=now - self.settings.revoked_retention, limit=batch
            )
            total += n
            batches += 1
            if n < batch:
                break
        return total

    # access tokens

    def verify_access_token(self, token: str) -> Principal:
        """Check an access token's signature and claims, and that its session is not revoked.

        Raises an :class:`InvalidToken` subclass. No store access. A token this process
        verified before is answered from a bounded cache keyed by its exact text; expiry
        and revocation are still checked on every call.
        """
        now = self.clock.now()
        principal = self._verified.get(token, now) if type(token) is str else None
        if principal is None:
            claims = self._verifier.verify(token, now=now)
            principal = Principal(
                user_id=claims.sub,
                sid=claims.sid,
                client_id=claims.client_id,
                scopes=claims.scope,
                expires_at=claims.exp,
                token_id=claims.jti,
            )
            nbf = claims.raw.get("nbf")
            not_before = max(claims.iat, nbf) if isinstance(nbf, int | float) else claims.iat
            leeway = self.settings.leeway
            self._verified.put(
                token, principal, valid_from=not_before - leeway, valid_until=claims.exp + leeway
            )
        if self.revoked.is_revoked(principal.sid, now):
            raise AccessTokenRevoked("the session of this access token has been revoked")
        return principal

    async def verify_access_token_fresh(self, token: str) -> Principal:
        """:meth:`verify_access_token`, after pulling in revocations made by other
        processes if the store says there may be any (a cheap, non-blocking check).

        Protected routes of a multi-process server use this, so a session revoked
        through one worker is refused by every worker at once.
        """
        marker = self.store.revocation_marker()
        if self.revocation_feed is not None:
            marker = (marker, self.revocation_feed.marker)
        if marker != self._revocation_marker:
            await self.sync_revocations()
            self._revocation_marker = marker
        try:
            return self.verify_access_token(token)
        except BadSignature:
            # Perhaps signed with a key another instance created or rotated in since we
            # last loaded keys. Reload at most four times a second, so forged tokens cannot
            # turn into a stream of store reads.
            now = self.clock.now()
            if now - self._keys_loaded_at < 0.25:
                raise
            await self.reload_keys()
            return self.verify_access_token(token)

    def keys(self) -> list[KeyRecord]:
        """The signing keys this process knows (public parts and times; nothing secret)."""
        return [k.record for k in self._keys.keys]

    def jwks(self) -> dict[str, object]:
        """The public keys to publish at ``/.well-known/jwks.json``."""
        return self._keys.jwks(self.clock.now())

    async def reload_keys(self) -> None:
        """Load the signing keys from the store (after a rotation by another instance)."""
        records = await self.store.load_keys()
        self._install_keys(records)

    async def rotate_signing_key(self) -> KeyRecord:
        """Publish a new signing key; it signs after ``key_publish_delay`` (first key: at once)."""
        await self.reload_keys()
        now = self.clock.now()
        plan = plan_rotation(
            self._keys,
            alg=self.settings.signing_alg,
            now=now,
            kek=self._keks[0],
            publish_delay=self.settings.key_publish_delay,
            access_ttl=self.settings.access_ttl,
            leeway=self.settings.leeway,
        )
        await self.store.save_keys([plan.new_key.record, *plan.retire])
        records = await self.store.load_keys()
        expired = purge_expired(records, now)
        if expired:
            await self.store.delete_keys(expired)
            records = [r for r in records if r.kid not in expired]
        self._install_keys(records)
        await self._event(EventKind.KEY_ROTATED, now, detail=f"kid={plan.new_key.kid}")
        return plan.new_key.record

    def _install_keys(self, records: Iterable[KeyRecord]) -> None:
        keys = [self._load_key(r) for r in records]
        self._keys = KeySet(keys)
        self._keys_loaded_at = self.clock.now()
        # A withdrawn key must stop verifying at once, cached tokens included.
        self._verified.clear()
        self._verifier = self._verifier.with_keys(self._keys)

    def _load_key(self, record: KeyRecord) -> SigningKey:
        last: ConfigurationError | None = None
        # Keys encrypted under an earlier deployment secret stay readable after rotation.
        for kek in self._keks:
            try:
                return load_key(record, kek=kek)
            except ConfigurationError as exc:
                last = exc
        assert last is not None
        raise ConfigurationError(
            f"signing key {record.kid} cannot be decrypted with the deployment secret: "
            "was KEYFOB_SECRET changed without keeping the old one in previous_secrets?"
        ) from last

    # revocation set

    async def sync_revocations(self) -> int:
        """Pull revocations made by other processes into the in-process set."""
        now = self.clock.now()
        horizon = now - self.settings.access_ttl - self.settings.leeway
        # Re-read what the previous sync may have missed: a revocation records the
        # revoker's clock before its UPDATE, but becomes visible only at commit, which a
        # lock wait can delay by seconds, and instances' clocks differ by up to leeway.
        # A one-second overlap lost such revocations for good (tests/multi).
        overlap = max(self.settings.leeway, _RESYNC_OVERLAP)
        since = (
            horizon
            if self._revocations_synced_at is None
            else max(horizon, self._revocations_synced_at - overlap)
        )
        rows = await self.store.revoked_since(since, now=now)
        for row in rows:
            self._remember_revoked(row.sid, row.revoked_at)
        self.revoked.prune(now)
        self._revocations_synced_at = now
        return len(rows)

    def _remember_revoked(self, sid: str, revoked_at: float) -> None:
        # No access token of the session outlives revoked_at + access_ttl + leeway.
        self.revoked.add(sid, revoked_at + self.settings.access_ttl + self.settings.leeway)

    # events

    async def events(
        self,
        *,
        limit: int = 100,
        kind: EventKind | None = None,
        user_id: str | None = None,
        sid: str | None = None,
        before_id: int | None = None,
    ) -> list[SecurityEvent]:
        """The security-event log, newest first."""
        return await self.store.list_events(
            limit=limit, kind=kind, user_id=user_id, sid=sid, before_id=before_id
        )

    # internals

    def _pair(self, session: Session, secret: bytes, now: float) -> TokenPair:
        access = self._signer.sign(
            self._keys.signing_key(now),
            sub=session.user_id,
            sid=session.sid,
            client_id=session.client_id,
            scope=session.scope,
            now=now,
        )
        return TokenPair(
            access_token=access,
            refresh_token=self._codec.mint(session.sid, secret, session.counter),
            expires_in=int(self.settings.access_ttl),
            session=session,
        )

    async def _handle_reuse(self, session: Session, rule: str, now: float) -> None:
        if self.settings.reuse_policy == "user":
            sids = await self.store.revoke_user_sessions(
                session.user_id, now=now, reason=RevokeReason.REUSE_DETECTED.value
            )
        else:
            revoked = await self.store.revoke_session(
                session.sid, now=now, reason=RevokeReason.REUSE_DETECTED.value
            )
            sids = [] if revoked is None else [revoked.sid]
        if sids and self.revocation_feed is not None:
            await self.revocation_feed.publish(sids)
        for sid in sids:
            self._remember_revoked(sid, now)
        event = SecurityEvent(
            kind=EventKind.REUSE_DETECTED,
            at=now,
            user_id=session.user_id,
            sid=session.sid,
            ip=session.device.ip,
            detail=f"rule={rule} revoked={len(sids)} policy={self.settings.reuse_policy}",
        )
        await self.store.record_event(event)
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

    async def _event(
        self,
        kind: EventKind,
        at: float,
        *,
        user_id: str | None = None,
        sid: str | None = None,
        ip: str = "",
        detail: str = "",
    ) -> None:
        await self.store.record_event(
            SecurityEvent(kind=kind, at=at, user_id=user_id, sid=sid, ip=ip, detail=detail)
        )


def _clean_username(username: object) -> str:
    if not isinstance(username, str):
        raise UserError("the username must be text")
    name = username.strip()
    if not name:
        raise UserError("the username must not be empty")
    if len(name) > _MAX_USERNAME:
        raise UserError(f"the username must be at most {_MAX_USERNAME} characters")
    if any(ord(c) < 32 or c == "\x7f" for c in name):
        raise UserError("the username must not contain control characters")
    return name


def _clean_device(device: DeviceInfo | None) -> DeviceInfo:
    if device is None:
        return DeviceInfo()
    return DeviceInfo(
        user_agent=device.user_agent[:_MAX_DEVICE_FIELD], ip=device.ip[:_MAX_DEVICE_FIELD]
    )
