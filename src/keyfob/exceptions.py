"""Every error keyfob raises, in one tree.

Callers catch :class:`KeyfobError` to catch them all. Errors that a client can cause
carry the OAuth 2.0 wire code (RFC 6749 §5.2 / RFC 6750 §3.1) on the class as
``error``, so every edge maps them to a response with one table.

    KeyfobError
    ├── ConfigurationError          settings or secrets are unusable (startup)
    ├── StoreError
    │   ├── StoreUnavailable        the store cannot be reached now; retry later (503)
    │   └── StoreIntegrityError     the store holds data keyfob cannot read
    ├── InvalidGrant                error = "invalid_grant": a refresh token is refused
    │   ├── MalformedToken          not a keyfob refresh token (shape, size, MAC)
    │   ├── SessionNotFound         the token's session does not exist (any more)
    │   ├── SessionRevoked          the session was revoked (logout, admin, reuse)
    │   ├── SessionExpired          past the idle or absolute deadline
    │   └── TokenReused             a rotated-away token came back: the family is revoked
    ├── InvalidToken                error = "invalid_token": an access token is refused
    │   ├── MissingCredentials      the request carries no bearer access token
    │   ├── MalformedAccessToken    not a JWT we accept (shape, size, header, alg, typ)
    │   ├── BadSignature            no published key verifies it
    │   ├── ExpiredAccessToken      past exp (with leeway) or not yet valid
    │   ├── InvalidClaims           iss, aud or another required claim is wrong
    │   └── AccessTokenRevoked      its session was revoked after it was issued
    ├── AuthenticationFailed        error = "invalid_grant": wrong username or password
    ├── InvalidRequest              error = "invalid_request": the HTTP request is malformed
    │   ├── PayloadTooLarge         the body is larger than the route accepts (413)
    │   ├── UnsupportedMediaType    the body is not of the accepted media type (415)
    │   ├── CSRFRejected            a cookie request failed the CSRF checks (403)
    │   └── InsecureCookieTransport the refresh cookie cannot travel over plain HTTP here
    ├── UnsupportedGrantType        error = "unsupported_grant_type"
    ├── NotFound                    error = "not_found": no such route or resource (404)
    ├── RateLimited                 error = "too_many_requests": slow down (429, Retry-After)
    ├── UserError
    │   ├── WeakPassword            error = "invalid_request": the password policy says no
    │   ├── UserExists              error = "invalid_request": the username is taken
    │   └── UserNotFound            an admin call named a user that does not exist
    └── PermissionDenied            error = "insufficient_scope" / not the caller's session
"""

from __future__ import annotations

__all__ = [
    "AccessTokenRevoked",
    "AuthenticationFailed",
    "BadSignature",
    "CSRFRejected",
    "ConfigurationError",
    "ExpiredAccessToken",
    "InsecureCookieTransport",
    "InvalidClaims",
    "InvalidGrant",
    "InvalidRequest",
    "InvalidToken",
    "KeyfobError",
    "MalformedAccessToken",
    "MalformedToken",
    "MissingCredentials",
    "NotFound",
    "PayloadTooLarge",
    "PermissionDenied",
    "RateLimited",
    "SessionExpired",
    "SessionNotFound",
    "SessionRevoked",
    "StoreError",
    "StoreIntegrityError",
    "StoreUnavailable",
    "TokenReused",
    "UnsupportedGrantType",
    "UnsupportedMediaType",
    "UserError",
    "UserExists",
    "UserNotFound",
    "WeakPassword",
]


class KeyfobError(Exception):
    """Base of every error keyfob raises."""

    #: OAuth 2.0 error code for the wire, where the error is the client's.
    error: str = "server_error"

    def __init__(self, description: str = "") -> None:
        super().__init__(description or self.__class__.__doc__ or self.__class__.__name__)
        self.description = description or (self.__class__.__doc__ or "").strip()


class ConfigurationError(KeyfobError):
    """The settings or secrets are unusable."""


class StoreError(KeyfobError):
    """The store failed."""


class StoreUnavailable(StoreError):
    """The store cannot be reached now; nothing was changed, retry later."""

    error = "temporarily_unavailable"

    def __init__(self, description: str = "", *, retry_after: int = 1) -> None:
        super().__init__(description)
        self.retry_after = retry_after


class StoreIntegrityError(StoreError):
    """The store holds data keyfob cannot read."""


class InvalidGrant(KeyfobError):
    """The refresh token is invalid, expired or revoked."""

    error = "invalid_grant"


class MalformedToken(InvalidGrant):
    """The refresh token is not one keyfob issued."""


class SessionNotFound(InvalidGrant):
    """The session does not exist."""


class SessionRevoked(InvalidGrant):
    """The session has been revoked."""

    def __init__(self, description: str = "", *, reason: str = "") -> None:
        super().__init__(description)
        self.reason = reason


class SessionExpired(InvalidGrant):
    """The session has expired."""


class TokenReused(InvalidGrant):
    """A refresh token that was already rotated was used again; the session is revoked."""

    def __init__(self, description: str = "", *, rule: str = "", sid: str = "") -> None:
        super().__init__(description)
        self.rule = rule
        self.sid = sid


class InvalidToken(KeyfobError):
    """The access token is invalid."""

    error = "invalid_token"


class MalformedAccessToken(InvalidToken):
    """The access token is not a JWT keyfob accepts."""


class BadSignature(InvalidToken):
    """The access token's signature does not verify."""


class ExpiredAccessToken(InvalidToken):
    """The access token has expired or is not valid yet."""


class InvalidClaims(InvalidToken):
    """The access token's claims are wrong for this service."""


class AccessTokenRevoked(InvalidToken):
    """The access token's session has been revoked."""


class AuthenticationFailed(KeyfobError):
    """Wrong username or password."""

    error = "invalid_grant"


class UserError(KeyfobError):
    """A user-management request cannot be carried out."""

    error = "invalid_request"


class WeakPassword(UserError):
    """The password does not meet the password policy."""


class UserExists(UserError):
    """That username is already taken."""


class UserNotFound(UserError):
    """No such user."""


class InvalidRequest(KeyfobError):
    """The request is missing a parameter, repeats one, or is otherwise malformed."""

    error = "invalid_request"


class PayloadTooLarge(InvalidRequest):
    """The request body is larger than this route accepts."""


class UnsupportedMediaType(InvalidRequest):
    """The request body is not of the media type this route accepts."""


class CSRFRejected(InvalidRequest):
    """A cookie-authenticated request failed the CSRF checks."""


class InsecureCookieTransport(InvalidRequest):
    """The refresh cookie cannot be sent over plain HTTP to this host."""


class UnsupportedGrantType(KeyfobError):
    """The token endpoint does not support this grant type."""

    error = "unsupported_grant_type"


class NotFound(KeyfobError):
    """There is nothing here."""

    error = "not_found"


class RateLimited(KeyfobError):
    """Too many requests; retry after ``retry_after`` seconds."""

    error = "too_many_requests"

    def __init__(self, description: str = "", *, retry_after: int = 1) -> None:
        super().__init__(description)
        self.retry_after = retry_after


class MissingCredentials(InvalidToken):
    """The request carries no bearer access token."""


class PermissionDenied(KeyfobError):
    """The caller may not do this."""

    error = "insufficient_scope"
