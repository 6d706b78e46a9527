"""SessionManager: keyfob's front door, composed of one part per job.

    SessionManager
    ├── accounts      Accounts     register, authenticate, change passwords   (accounts.py)
    ├── sessions      Sessions     issue, refresh, revoke, purge               (sessions.py)
    ├── signing_keys  SigningKeys  load, rotate and publish the signing keys   (signing_keys.py)
    ├── verifier      Verifier     access tokens, with no store at all         (verifier.py)
    ├── clients       Clients      the OAuth client registry, client auth      (clients.py)
    ├── authorization_codes  AuthorizationCodes  make and exchange codes   (authorization_codes.py)
    └── event_log     EventLog     the security-event log                      (events.py)

The rules live in :mod:`keyfob.core`; the parts add only what needs I/O. The manager
wires them together (a revocation reaches the verifier; a new key set too), keeps the
in-process set of revoked sessions in step with other processes, and offers every
operation under one name, so the edges (server, integrations, CLI) talk to one object.
"""

from __future__ import annotations

import secrets
from collections.abc import Sequence
from typing import TYPE_CHECKING

from .accounts import Accounts
from .authorization_codes import AuthorizationCodes
from .clients import Clients
from .core.access_tokens import AccessTokenSigner
from .core.authorization_codes import CodeExchange
from .core.clients import Client, ClientCredentials
from .core.clock import Clock, SystemClock
from .core.id_tokens import (
    OPENID_SCOPE,
    IdTokenHint,
    id_token_claims,
    sign_id_token,
    userinfo_claims,
    verify_id_token_hint,
)
from .core.introspection import INACTIVE, access_token_info, refresh_token_info
from .core.keys import KeyRecord, KeySet, derive_kek
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
from .core.refresh_tokens import PREFIX as REFRESH_TOKEN_PREFIX
from .core.refresh_tokens import (
    ParsedRefreshToken,
    RefreshToken,
    RefreshTokenCodec,
    derive_mac_key,
)
from .core.revocation import RevokedSids
from .events import EventLog
from .exceptions import (
    BadSignature,
    ConfigurationError,
    InvalidGrant,
    InvalidToken,
    PermissionDenied,
)
from .password_pool import PasswordPool
from .revocation_feed import RevocationFeed
from .sessions import ReuseHook, Sessions, clean_device
from .settings import Settings, load_deployment_secret
from .signing_keys import SigningKeys
from .store.protocol import Store
from .verifier import Verifier

if TYPE_CHECKING:
    import asyncio

__all__ = ["ReuseHook", "SessionManager"]

#: How often a token no key verifies may trigger a reload of the keys from the store.
_KEY_RELOAD_SPACING = 0.25


class SessionManager:
    """Log in, refresh, revoke and verify, per spec §3.

    ``await manager.start()`` opens the store, applies migrations and makes sure a
    signing key exists; ``await manager.close()`` closes the store. Access tokens need an
    issuer (``settings.issuer``); without one the manager still administers accounts and
    sessions (the CLI's admin commands) and refuses only to sign or verify.
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
        #: Tells other instances of this manager's revocations and hears theirs (optional).
        self.revocation_feed = revocation_feed
        #: Wakes the revocation feed's long-polls (:meth:`revocations_recorded`).
        self._revocation_signal: asyncio.Event | None = None  # made by the first waiter
        secrets_newest_first = load_deployment_secret(settings)
        self._codec = RefreshTokenCodec([derive_mac_key(s) for s in secrets_newest_first])
        self.event_log = EventLog(store)
        self.accounts = Accounts(
            store,
            self.event_log,
            passwords=PasswordPool(
                PasswordHasher(settings.password_profile),
                threads=settings.password_hash_threads,
                queue_limit=settings.password_hash_queue,
            ),
            policy=PasswordPolicy(min_length=settings.password_min_length),
            clock=self.clock,
        )
        self.signing_keys = SigningKeys(
            store,
            self.event_log,
            keks=[derive_kek(s) for s in secrets_newest_first],
            settings=settings,
            clock=self.clock,
            on_change=self._use_keys,
        )
        self._signer: AccessTokenSigner | None = None
        self._verifier: Verifier | None = None
        if settings.issuer:
            audience = settings.effective_audience
            self._signer = AccessTokenSigner(
                issuer=settings.issuer, audience=audience, ttl=settings.access_ttl
            )
            self._verifier = Verifier(
                issuer=settings.issuer,
                audience=audience,
                leeway=settings.leeway,
                max_token_lifetime=settings.access_ttl,
                cache_size=settings.verified_token_cache_size,
                clock=self.clock,
            )
        self.sessions = Sessions(
            store,
            self.event_log,
            codec=self._codec,
            settings=settings,
            clock=self.clock,
            mint_access_token=self._mint_access_token,
            on_revoked=self._revoked,
            on_reuse=on_reuse,
        )
        self.clients = Clients(store, clock=self.clock, leeway=settings.leeway)
        self.authorization_codes = AuthorizationCodes(
            store,
            self.event_log,
            clock=self.clock,
            get_client=self.clients.get,
            issue=self._issue_for_code,
            revoke=self._revoke_for_code,
            reuse_hook=lambda: self.sessions.on_reuse,
        )
        self._revocations_synced_at: float | None = None
        self._revocation_marker: object = None
        self._started = False

    def __repr__(self) -> str:
        return f"SessionManager(store={self.store!r})"

    @property
    def verifier(self) -> Verifier:
        """The in-process access-token verifier (no store access)."""
        if self._verifier is None:
            raise ConfigurationError("access tokens need an issuer: set KEYFOB_ISSUER")
        return self._verifier

    @property
    def revoked(self) -> RevokedSids:
        """The sessions whose access tokens this process refuses (see :class:`Verifier`)."""
        return self.verifier.revoked

    @property
    def on_reuse(self) -> ReuseHook | None:
        return self.sessions.on_reuse

    @on_reuse.setter
    def on_reuse(self, hook: ReuseHook | None) -> None:
        self.sessions.on_reuse = hook

    # lifecycle of the manager itself

    async def start(self) -> None:
        """Open the store (applying migrations) and load or create the signing key.

        Nothing happens if it is started already (``keyfob serve`` starts the manager
        before the app's lifespan does, to report an unreachable store in one line).
        """
        if self._started:
            return
        # Imported here: `import keyfob` (which loads this module) pulls in no event
        # loop machinery (tests/test_import_boundaries.py).
        import asyncio

        await self.store.open()
        # Read before the sync: a revocation announced meanwhile moves the marker and the
        # first protected request syncs again; otherwise that request need not.
        marker = self._current_revocation_marker()
        # Independent reads, side by side: a start-up's round trips add up when the
        # database is far away (docs/scaling.md, "Start-up against a remote database").
        await asyncio.gather(self.signing_keys.ensure_key(), self.sync_revocations())
        self._revocation_marker = marker
        self._started = True

    def _current_revocation_marker(self) -> object:
        marker = self.store.revocation_marker()
        if self.revocation_feed is not None:
            return (marker, self.revocation_feed.marker)
        return marker

    async def close(self) -> None:
        self._started = False
        self._revocation_marker = None
        self.accounts.close()
        await self.store.close()

    async def __aenter__(self) -> SessionManager:
        await self.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    # accounts

    async def register(self, username: str, password: str) -> User:
        """Create an account; :class:`WeakPassword` or :class:`UserExists` say why not."""
        return await self.accounts.register(username, password)

    async def authenticate(self, username: str, password: str, *, ip: str = "") -> User:
        """The user whose password this is, or :class:`AuthenticationFailed`."""
        return await self.accounts.authenticate(username, password, ip=ip)

    async def get_user(self, user_id: str) -> User | None:
        return await self.accounts.get_user(user_id)

    async def get_user_by_name(self, username: str) -> User | None:
        return await self.accounts.get_user_by_name(username)

    async def list_users(self, *, limit: int = 100, offset: int = 0) -> list[User]:
        return await self.accounts.list_users(limit=limit, offset=offset)

    async def change_password(
        self, user_id: str, old_password: str, new_password: str, *, keep_sid: str | None = None
    ) -> list[str]:
        """Set a new password and revoke every other session of the user; return their sids."""
        user = await self.accounts.change_password(
            user_id, old_password, new_password, sid=keep_sid
        )
        return await self.sessions.revoke_user_sessions(
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
        device = clean_device(device)
        user = await self.accounts.authenticate(username, password, ip=device.ip)
        pair = await self.sessions.issue(user.id, client_id=client_id, scope=scope, device=device)
        await self.event_log.record(
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
        return await self.sessions.issue(user_id, client_id=client_id, scope=scope, device=device)

    def parse_refresh_token(self, refresh_token: str | RefreshToken) -> ParsedRefreshToken:
        """Check a refresh token's shape and MAC, with no store access.

        Edges use it to key per-session limits before the store is touched; pass the
        result to :meth:`refresh` so the MAC is not checked twice. A forged token raises
        :class:`MalformedToken` here, so it cannot spend a real session's budget.
        """
        return self._codec.parse(refresh_token)

    async def refresh(
        self,
        refresh_token: str | RefreshToken | ParsedRefreshToken,
        *,
        client_id: str | None = None,
        scope: str | None = None,
    ) -> TokenPair:
        """Rotate a refresh token (spec §3).

        Raises an :class:`InvalidGrant` subclass: :class:`MalformedToken` before any
        store access, :class:`TokenReused` after revoking the family, or
        :class:`SessionRevoked` / :class:`SessionExpired` / :class:`SessionNotFound`.
        With ``client_id`` (the client that asks: HTTP edges pass it), a session issued
        to another client is :class:`ClientMismatch` and nothing changes. With ``scope``,
        the access token gets that scope if it is within the session's, else
        :class:`InvalidScope` before anything rotates (RFC 6749 §6).
        """
        return await self.sessions.refresh(refresh_token, client_id=client_id, scope=scope)

    async def logout(
        self, refresh_token: str | RefreshToken, *, reason: RevokeReason = RevokeReason.LOGOUT
    ) -> bool:
        """Revoke the session a refresh token belongs to. True if this call revoked it."""
        return await self.sessions.logout(refresh_token, reason=reason)

    async def revoke_session(
        self, sid: str, *, reason: RevokeReason = RevokeReason.ADMIN, user_id: str | None = None
    ) -> bool:
        """Revoke one session (only if it is ``user_id``'s, when given). True if revoked now."""
        return await self.sessions.revoke_session(sid, reason=reason, user_id=user_id)

    async def logout_all(self, user_id: str) -> list[str]:
        """Revoke every session of the user; return their sids."""
        return await self.sessions.revoke_user_sessions(user_id, reason=RevokeReason.LOGOUT_ALL)

    async def revoke_user_sessions(
        self,
        user_id: str,
        *,
        reason: RevokeReason = RevokeReason.ADMIN,
        except_sid: str | None = None,
    ) -> list[str]:
        """Revoke every session of the user (but ``except_sid``) at once; return their sids."""
        return await self.sessions.revoke_user_sessions(
            user_id, reason=reason, except_sid=except_sid
        )

    async def list_sessions(self, user_id: str) -> list[Session]:
        """The user's live sessions with device details, newest first."""
        return await self.sessions.list_sessions(user_id)

    async def purge(self, *, batch: int = 1000, max_batches: int | None = None) -> int:
        """Delete expired and long-revoked sessions, and long-expired authorization
        codes, in batches of each; return how many went."""
        sessions = await self.sessions.purge(batch=batch, max_batches=max_batches)
        codes = await self.authorization_codes.purge(batch=batch, max_batches=max_batches)
        return sessions + codes

    # authorization codes (RFC 6749 §4.1, RFC 7636)

    async def create_authorization_code(
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
        """A single-use code (60 s) bound to all of these; the text to put in the redirect.

        The request is checked against the client's registration once more (grant,
        redirect URI, scope, PKCE), so no code can be made that its registration does
        not allow: :class:`InvalidClient`, :class:`UnauthorizedClient`,
        :class:`InvalidRequest` or :class:`InvalidScope` say what is wrong.
        """
        return await self.authorization_codes.create(
            user_id=user_id,
            client_id=client_id,
            redirect_uri=redirect_uri,
            scope=scope,
            code_challenge=code_challenge,
            nonce=nonce,
            auth_time=auth_time,
        )

    async def exchange_authorization_code(
        self,
        code: str,
        *,
        client: Client,
        redirect_uri: str | None,
        code_verifier: str | None,
        device: DeviceInfo | None = None,
    ) -> CodeExchange:
        """RFC 6749 §4.1.3 + RFC 7636 §4.6; InvalidGrant on any mismatch; a second use of a
        code revokes the session issued from it. Returns the tokens and what the id_token needs.

        ``client`` is the client the token request authenticated as
        (:meth:`authenticate_client`). A failed exchange spends the code as well
        (:mod:`keyfob.authorization_codes` says why).
        """
        return await self.authorization_codes.exchange(
            code,
            client=client,
            redirect_uri=redirect_uri,
            code_verifier=code_verifier,
            device=device,
        )

    # OAuth clients and their token operations (RFC 7009, RFC 7662)

    async def authenticate_client(
        self, credentials: ClientCredentials, *, audiences: Sequence[str] = ()
    ) -> Client:
        """The client a token-endpoint request proves or names; :class:`InvalidClient`
        if it does not. Assertions may be addressed to the issuer or to ``audiences``."""
        issuer = self.settings.issuer
        return await self.clients.authenticate(
            credentials, audiences={*audiences, *([issuer] if issuer else [])}
        )

    async def revoke_token(self, token: str, *, client: Client) -> bool:
        """RFC 7009: end the session of ``token`` (a refresh or an access token) if it
        was issued to ``client``. True if this call revoked a session.

        Any token that is not one of the client's live tokens is ignored (the endpoint
        answers 200 alike, §2.2): unknown, malformed, expired, already revoked, or
        another client's. An access token's session goes into the revoked set at once.
        """
        sid: str | None = None
        if token.startswith(REFRESH_TOKEN_PREFIX):
            try:
                parsed = self._codec.parse(token)
            except InvalidGrant:
                return False
            session = await self.store.get_session(parsed.sid)
            if (
                session is not None
                and session.client_id == client.client_id
                and secrets.compare_digest(session.secret_hash, parsed.secret_hash)
            ):
                sid = session.sid
        else:
            try:
                principal = await self.verify_access_token_fresh(token)
            except InvalidToken:
                return False
            if principal.client_id == client.client_id:
                sid = principal.sid
        if sid is None:
            return False
        return await self.sessions.revoke_session(sid, reason=RevokeReason.TOKEN_REVOKED)

    async def introspect(self, token: str) -> dict[str, object]:
        """RFC 7662: what ``token`` is, if active; ``{"active": false}`` for anything
        else, alike (no answer tells an unknown token from an expired or revoked one).

        A refresh token is active while it is its live session's current token; an
        access token while it verifies and its session is not in the revoked set, which
        is brought up to date first (revocations by other processes count at once).
        """
        issuer = self.settings.issuer
        if token.startswith(REFRESH_TOKEN_PREFIX):
            try:
                parsed = self._codec.parse(token)
            except InvalidGrant:
                return dict(INACTIVE)
            session = await self.store.get_session(parsed.sid)
            if (
                session is None
                or not secrets.compare_digest(session.secret_hash, parsed.secret_hash)
                or session.counter != parsed.counter
                or not session.is_live(self.clock.now())
            ):
                return dict(INACTIVE)
            return refresh_token_info(session, issuer=issuer)
        try:
            principal = await self.verify_access_token_fresh(token)
        except InvalidToken:
            return dict(INACTIVE)
        return access_token_info(
            principal, issuer=issuer, audience=self.settings.effective_audience
        )

    # access tokens and keys

    def verify_access_token(self, token: str) -> Principal:
        """Check an access token's signature and claims, and that its session is not revoked.

        Raises an :class:`InvalidToken` subclass. No store access (:class:`Verifier`).
        """
        return self.verifier.verify_access_token(token)

    async def verify_access_token_fresh(self, token: str) -> Principal:
        """:meth:`verify_access_token`, after pulling in revocations made by other
        processes if the store says there may be any (a cheap, non-blocking check).

        Protected routes of a multi-process server use this, so a session revoked
        through one worker is refused by every worker at once.
        """
        marker = self._current_revocation_marker()
        if marker != self._revocation_marker:
            await self.sync_revocations()
            self._revocation_marker = marker
        verifier = self.verifier
        try:
            return verifier.verify_access_token(token)
        except BadSignature:
            # Perhaps signed with a key another instance created or rotated in since we
            # last loaded keys. Reload at most four times a second, so forged tokens cannot
            # turn into a stream of store reads.
            if self.clock.now() - self.signing_keys.loaded_at < _KEY_RELOAD_SPACING:
                raise
            await self.signing_keys.reload()
            return verifier.verify_access_token(token)

    def keys(self) -> list[KeyRecord]:
        """The signing keys this process knows (public parts and times; nothing secret)."""
        return self.signing_keys.records()

    def jwks(self) -> dict[str, object]:
        """The public keys to publish at ``/.well-known/jwks.json``."""
        return self.signing_keys.jwks()

    async def reload_keys(self) -> None:
        """Load the signing keys from the store (after a rotation by another instance)."""
        await self.signing_keys.reload()

    async def rotate_signing_keys(self) -> list[KeyRecord]:
        """Publish a new signing key for each algorithm in use (the access tokens', and
        the id tokens' when ``id_token_alg`` differs); each signs after
        ``key_publish_delay`` (the first key of an algorithm: at once). Returns the new
        keys, the access tokens' first."""
        return await self.signing_keys.rotate()

    async def rotate_signing_key(self) -> KeyRecord:
        """:meth:`rotate_signing_keys`, returning the access tokens' new key."""
        return (await self.signing_keys.rotate())[0]

    # OpenID Connect

    def mint_id_token(
        self, session: Session, *, nonce: str | None, auth_time: float, access_token: str
    ) -> str:
        """OIDC Core §2 id_token for ``session``, issued with ``access_token``: iss, sub,
        aud = azp = the session's client, exp (the access-token lifetime), iat,
        auth_time, nonce (if given), at_hash of ``access_token`` and sid; signed with
        the id-token key (``settings.id_token_alg``, RS256 by default)."""
        issuer = self.settings.issuer
        if not issuer:
            raise ConfigurationError("id tokens need an issuer: set KEYFOB_ISSUER")
        now = self.clock.now()
        key = self.signing_keys.signing_key(now, self.settings.id_token_alg)
        claims = id_token_claims(
            session,
            issuer=issuer,
            alg=key.alg,
            access_token=access_token,
            nonce=nonce,
            auth_time=auth_time,
            now=now,
            ttl=self.settings.access_ttl,
        )
        return sign_id_token(key, claims)

    async def userinfo(self, principal: Principal) -> dict[str, object]:
        """OIDC Core §5.3: the claims about the user of a verified access token, which
        must carry the ``openid`` scope (:class:`PermissionDenied` otherwise, RFC 6750
        §3.1 insufficient_scope); the profile claims when ``profile`` was granted."""
        if OPENID_SCOPE not in principal.scopes:
            raise PermissionDenied(
                "userinfo needs an access token with the openid scope",
                required_scopes=[OPENID_SCOPE],
            )
        user = await self.accounts.get_user(principal.user_id)
        if user is None:
            raise InvalidToken("the user of this access token no longer exists")
        return userinfo_claims(user, principal.scopes)

    async def verify_id_token_hint(self, token: str) -> IdTokenHint:
        """An id_token this issuer signed, even expired (RP-Initiated Logout §2); an
        :class:`InvalidToken` subclass for anything else. A key another instance made
        since the keys were loaded is found by one reload, as for access tokens."""
        issuer = self.settings.issuer
        if not issuer:
            raise ConfigurationError("id tokens need an issuer: set KEYFOB_ISSUER")
        try:
            return verify_id_token_hint(
                token, keys=self.signing_keys.key_set, issuer=issuer, now=self.clock.now()
            )
        except BadSignature:
            if self.clock.now() - self.signing_keys.loaded_at < _KEY_RELOAD_SPACING:
                raise
            await self.signing_keys.reload()
            return verify_id_token_hint(
                token, keys=self.signing_keys.key_set, issuer=issuer, now=self.clock.now()
            )

    async def end_session(self, hint: IdTokenHint) -> bool:
        """RP-initiated logout: revoke the session a verified id_token names (reason
        ``logout``). True if this call revoked it; False if it had ended already."""
        return await self.sessions.revoke_session(
            hint.sid, reason=RevokeReason.LOGOUT, user_id=hint.sub
        )

    # revocations across processes

    async def sync_revocations(self) -> int:
        """Pull revocations made by other processes into the in-process set."""
        now = self.clock.now()
        horizon = now - self.settings.access_ttl - self.settings.leeway
        # Re-read what the previous sync may have missed: a revocation records the
        # revoker's clock before its UPDATE, but becomes visible only at commit, which a
        # lock wait can delay by up to the store's max_write_delay, and instances' clocks
        # differ by up to leeway. A one-second overlap lost such revocations for good
        # (tests/multi). An unbounded delay (inf) re-reads back to the horizon.
        overlap = max(self.settings.leeway, self.store.max_write_delay)
        since = (
            horizon
            if self._revocations_synced_at is None
            else max(horizon, self._revocations_synced_at - overlap)
        )
        rows = await self.store.revoked_since(since, now=now)
        verifier = self._verifier
        if verifier is not None:
            for row in rows:
                verifier.remember_revoked(row.sid, row.revoked_at)
            verifier.forget_stale_revocations()
        self._revocations_synced_at = now
        if rows:
            self._signal_revocations()
        return len(rows)

    async def revocations_recorded(self) -> None:
        """Return when this process next records or syncs revocations (callers bound the
        wait). Only a wake-up: the store says what changed."""
        import asyncio  # here, as in start(): `import keyfob` loads no event loop

        if self._revocation_signal is None:
            self._revocation_signal = asyncio.Event()
        await self._revocation_signal.wait()

    def _signal_revocations(self) -> None:
        # One event per generation: set wakes every waiter, the next waiters get a fresh
        # one. No I/O and nothing to do when no long-poll has ever waited.
        signal = self._revocation_signal
        if signal is not None:
            self._revocation_signal = None
            signal.set()

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
        return await self.event_log.list(
            limit=limit, kind=kind, user_id=user_id, sid=sid, before_id=before_id
        )

    # wiring between the parts

    def _mint_access_token(self, session: Session, now: float, scope: str | None = None) -> str:
        signer = self._signer
        if signer is None:
            raise ConfigurationError("access tokens need an issuer: set KEYFOB_ISSUER")
        return signer.sign(
            self.signing_keys.signing_key(now),
            sub=session.user_id,
            sid=session.sid,
            client_id=session.client_id,
            scope=session.scope if scope is None else scope,
            now=now,
        )

    async def _revoked(self, sids: Sequence[str], at: float) -> None:
        # Refused here at once; then announced, so other instances need not wait for
        # their next resync from the store.
        if self._verifier is not None:
            for sid in sids:
                self._verifier.remember_revoked(sid, at)
        if sids:
            self._signal_revocations()
        if sids and self.revocation_feed is not None:
            await self.revocation_feed.publish(sids)

    async def _issue_for_code(
        self,
        user_id: str,
        client_id: str,
        scope: str,
        device: DeviceInfo | None,
        auth_time: float,
    ) -> TokenPair:
        return await self.sessions.issue(
            user_id, client_id=client_id, scope=scope, device=device, auth_time=auth_time
        )

    async def _revoke_for_code(self, sid: str, reason: RevokeReason) -> bool:
        return await self.sessions.revoke_session(sid, reason=reason)

    def _use_keys(self, keys: KeySet) -> None:
        if self._verifier is not None:
            self._verifier.use_keys(keys)
