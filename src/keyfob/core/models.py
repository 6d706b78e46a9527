"""The records keyfob works with: frozen dataclasses, no behaviour beyond small queries."""

from __future__ import annotations

import enum
from collections.abc import Iterable
from dataclasses import dataclass, field

from .refresh_tokens import RefreshToken

__all__ = [
    "DeviceInfo",
    "EventKind",
    "Principal",
    "ReuseRule",
    "RevokeReason",
    "SecurityEvent",
    "Session",
    "TokenPair",
    "User",
]


class RevokeReason(enum.StrEnum):
    """Why a session stopped being usable."""

    LOGOUT = "logout"
    #: A login replaced the refresh cookie of this session in the same browser.
    RELOGIN = "relogin"
    LOGOUT_ALL = "logout_all"
    USER_REVOKED = "user_revoked"
    ADMIN = "admin"
    PASSWORD_CHANGE = "password_change"
    REUSE_DETECTED = "reuse_detected"
    #: A client revoked one of the session's tokens (RFC 7009).
    TOKEN_REVOKED = "token_revoked"
    #: The authorization code the session was issued from was presented again
    #: (RFC 6749 §4.1.2).
    CODE_REUSED = "code_reused"


class ReuseRule(enum.StrEnum):
    """Which rule of spec §3 classified a presented token as reused."""

    #: The immediately previous token came back after the grace window closed.
    PREVIOUS_OUTSIDE_GRACE = "previous_token_outside_grace"
    #: The immediately previous token came back and grace is disabled (0 s).
    PREVIOUS_GRACE_DISABLED = "previous_token_grace_disabled"
    #: A token two or more rotations old came back.
    OLDER_TOKEN = "older_token"
    #: An authorization code was presented a second time (RFC 6749 §4.1.2).
    AUTHORIZATION_CODE = "authorization_code_reused"


class EventKind(enum.StrEnum):
    """The kinds of entry in the security-event log (spec §7)."""

    LOGIN_OK = "login_ok"
    LOGIN_FAILED = "login_failed"
    #: Failed logins started a throttle (of one account from one client, or of an
    #: account from all unknown clients): someone is guessing. Not a lockout: the owner
    #: elsewhere, or on a browser that signed in before, can still sign in.
    LOGIN_THROTTLED = "login_throttled"
    REUSE_DETECTED = "reuse_detected"
    REVOKE = "revoke"
    KEY_ROTATED = "key_rotated"
    USER_CREATED = "user_created"
    PASSWORD_CHANGED = "password_changed"


@dataclass(frozen=True, slots=True)
class DeviceInfo:
    """What the client told us about itself when it logged in."""

    user_agent: str = ""
    ip: str = ""


@dataclass(frozen=True, slots=True)
class Session:
    """One login on one device: one refresh-token family, one row (spec §2).

    ``counter`` is the rotation counter of the one refresh token that is current;
    ``secret_hash`` is SHA-256 of the per-session secret, never the secret itself.
    """

    sid: str
    user_id: str
    client_id: str
    scope: str
    secret_hash: bytes = field(repr=False)
    counter: int
    created_at: float
    last_used_at: float
    rotated_at: float | None
    idle_expires_at: float
    absolute_expires_at: float
    device: DeviceInfo = DeviceInfo()
    revoked_at: float | None = None
    revoked_reason: str | None = None
    #: When the user proved who they are, if that was before the session began: a
    #: code grant's sign-in on the authorization page comes up to the code's lifetime
    #: before the exchange. None: at ``created_at`` (a login at ``/auth/login``).
    auth_time: float | None = None

    @property
    def revoked(self) -> bool:
        return self.revoked_at is not None

    @property
    def signed_in_at(self) -> float:
        """When the user signed in: an id_token's ``auth_time`` for the session's whole
        life, refreshes included (OpenID Connect Core §12.2)."""
        return self.created_at if self.auth_time is None else self.auth_time

    def expires_at(self) -> float:
        """When the session ends if nothing refreshes it."""
        return min(self.idle_expires_at, self.absolute_expires_at)

    def is_expired(self, now: float) -> bool:
        return now >= self.expires_at()

    def is_live(self, now: float) -> bool:
        return not self.revoked and not self.is_expired(now)


@dataclass(frozen=True, slots=True)
class User:
    """An account that can log in."""

    id: str
    username: str
    password_hash: str = field(repr=False)
    created_at: float


@dataclass(frozen=True, slots=True)
class SecurityEvent:
    """One entry of the security-event log. ``detail`` never contains a token."""

    kind: EventKind
    at: float
    user_id: str | None = None
    sid: str | None = None
    ip: str = ""
    detail: str = ""
    id: int | None = None


@dataclass(frozen=True, slots=True)
class TokenPair:
    """What login and refresh hand to the client.

    ``refresh_token`` prints masked; its text is ``refresh_token.value``.
    """

    access_token: str = field(repr=False)
    refresh_token: RefreshToken
    expires_in: int
    session: Session
    token_type: str = "Bearer"
    #: The access token's scope when narrower than the session's (RFC 6749 §6).
    access_scope: str | None = None

    @property
    def scope(self) -> str:
        """The access token's scope."""
        return self.session.scope if self.access_scope is None else self.access_scope


@dataclass(frozen=True, slots=True)
class Principal:
    """Who a verified access token speaks for."""

    user_id: str
    sid: str
    client_id: str
    scopes: frozenset[str]
    expires_at: int
    token_id: str

    def has_scopes(self, required: Iterable[str]) -> bool:
        return set(required) <= self.scopes
