"""keyfob: rotating refresh-token sessions for Python web apps.

    from keyfob import Settings, SessionManager, open_store

Importing keyfob pulls in no web framework, HTTP client or database driver.
"""

from __future__ import annotations

from .core.clock import Clock, SystemClock
from .core.models import (
    DeviceInfo,
    EventKind,
    Principal,
    ReuseRule,
    RevokeReason,
    SecurityEvent,
    Session,
    TokenPair,
    User,
)
from .core.refresh_tokens import RefreshToken
from .exceptions import (
    AccessTokenRevoked,
    AuthenticationFailed,
    BadSignature,
    ConfigurationError,
    CSRFRejected,
    ExpiredAccessToken,
    InsecureCookieTransport,
    InvalidClaims,
    InvalidGrant,
    InvalidRequest,
    InvalidToken,
    IssuerUnavailable,
    KeyfobError,
    MalformedAccessToken,
    MalformedToken,
    MissingCredentials,
    NotFound,
    PayloadTooLarge,
    PermissionDenied,
    RateLimited,
    SessionExpired,
    SessionNotFound,
    SessionRevoked,
    StoreError,
    StoreIntegrityError,
    StoreUnavailable,
    TokenReused,
    UnknownKeyId,
    UnsupportedGrantType,
    UnsupportedMediaType,
    UserError,
    UserExists,
    UserNotFound,
    WeakPassword,
)
from .manager import ReuseHook, SessionManager
from .settings import Secret, Settings
from .store import Store, open_store

__version__ = "0.1.0"

__all__ = [
    "AccessTokenRevoked",
    "AuthenticationFailed",
    "BadSignature",
    "CSRFRejected",
    "Clock",
    "ConfigurationError",
    "DeviceInfo",
    "EventKind",
    "ExpiredAccessToken",
    "InsecureCookieTransport",
    "InvalidClaims",
    "InvalidGrant",
    "InvalidRequest",
    "InvalidToken",
    "IssuerUnavailable",
    "KeyfobError",
    "MalformedAccessToken",
    "MalformedToken",
    "MissingCredentials",
    "NotFound",
    "PayloadTooLarge",
    "PermissionDenied",
    "Principal",
    "RateLimited",
    "RefreshToken",
    "ReuseHook",
    "ReuseRule",
    "RevokeReason",
    "Secret",
    "SecurityEvent",
    "Session",
    "SessionExpired",
    "SessionManager",
    "SessionNotFound",
    "SessionRevoked",
    "Settings",
    "Store",
    "StoreError",
    "StoreIntegrityError",
    "StoreUnavailable",
    "SystemClock",
    "TokenPair",
    "TokenReused",
    "UnknownKeyId",
    "UnsupportedGrantType",
    "UnsupportedMediaType",
    "User",
    "UserError",
    "UserExists",
    "UserNotFound",
    "WeakPassword",
    "open_store",
]
