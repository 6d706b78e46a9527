"""Every error keyfob raises, in one tree, each class carrying its HTTP answer.

Callers catch :class:`KeyfobError` to catch them all. Each class says how an edge
answers it: ``status_code``, the OAuth 2.0 wire code ``error`` (RFC 6749 §5.2,
RFC 6750 §3.1) and, through :meth:`~KeyfobError.challenge`, the ``WWW-Authenticate:
Bearer`` challenge if any; ``retry_after`` (where set) becomes ``Retry-After``.
:func:`keyfob.oauth.errors.render_error` turns them into one answer for every edge.
A subclass shows its status and code below where they differ from its parent's.

    KeyfobError                     500 server_error: bare "internal error", logged
    ├── ConfigurationError          settings or secrets are unusable (startup)
    ├── IssuerUnavailable           503 temporarily_unavailable: no keys from the issuer yet
    ├── StoreError                  the store failed
    │   ├── StoreUnavailable        503 temporarily_unavailable, Retry-After: retry later
    │   └── StoreIntegrityError     the store holds data keyfob cannot read
    ├── InvalidGrant                400 invalid_grant: a refresh token is refused
    │   ├── MalformedToken          not a keyfob refresh token (shape, size, MAC)
    │   ├── SessionNotFound         the token's session does not exist (any more)
    │   ├── SessionRevoked          the session was revoked (logout, admin, reuse)
    │   ├── SessionExpired          past the idle or absolute deadline
    │   ├── TokenReused             a rotated-away token came back: the family is revoked
    │   └── ClientMismatch          the token's session was issued to another client
    ├── InvalidToken                401 invalid_token, challenged: an access token is refused
    │   ├── MissingCredentials      no bearer access token: a challenge without error code
    │   ├── MalformedAccessToken    not a JWT we accept (shape, size, header, alg, typ)
    │   ├── BadSignature            no published key verifies it
    │   │   └── UnknownKeyId        its kid names no key we have (a resource server refetches)
    │   ├── ExpiredAccessToken      past exp (with leeway) or not yet valid
    │   ├── InvalidClaims           iss, aud or another required claim is wrong
    │   └── AccessTokenRevoked      its session was revoked after it was issued
    ├── AuthenticationFailed        400 invalid_grant: wrong username or password
    ├── InvalidRequest              400 invalid_request: the HTTP request is malformed
    │   ├── PayloadTooLarge         413: the body is larger than the route accepts
    │   ├── UnsupportedMediaType    415: the body is not of the accepted media type
    │   ├── CSRFRejected            403: a cookie request failed the CSRF checks
    │   └── InsecureCookieTransport the refresh cookie cannot travel over plain HTTP here
    ├── UnsupportedGrantType        400 unsupported_grant_type
    ├── InvalidClient               401 invalid_client, Basic challenge: client auth failed
    ├── UnauthorizedClient          400 unauthorized_client: the client may not use this grant
    ├── InvalidScope                400 invalid_scope: the scope is malformed or too wide
    ├── InvalidClientMetadata       400 invalid_client_metadata: a client registration is refused
    │   ├── ClientExists            409: the client id is taken
    │   └── ClientNotFound          404: no such client
    ├── NotFound                    404 not_found: no such route or resource
    ├── RateLimited                 429 too_many_requests, Retry-After: slow down
    ├── UserError                   400 invalid_request: a user-management request fails
    │   ├── WeakPassword            the password policy says no
    │   ├── UserExists              409: the username is taken
    │   └── UserNotFound            404: an admin call named a user that does not exist
    └── PermissionDenied            403 insufficient_scope, challenged with the needed scope
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import ClassVar

__all__ = [
    "AccessTokenRevoked",
    "AuthenticationFailed",
    "BadSignature",
    "CSRFRejected",
    "ClientExists",
    "ClientMismatch",
    "ClientNotFound",
    "ConfigurationError",
    "ExpiredAccessToken",
    "InsecureCookieTransport",
    "InvalidClaims",
    "InvalidClient",
    "InvalidClientMetadata",
    "InvalidGrant",
    "InvalidRequest",
    "InvalidScope",
    "InvalidToken",
    "IssuerUnavailable",
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
    "UnauthorizedClient",
    "UnknownKeyId",
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
    error: ClassVar[str] = "server_error"
    #: HTTP status of the answer. A 5xx other than ``StoreUnavailable`` is a fault of
    #: keyfob's, answered as a bare "internal error" and logged.
    status_code: ClassVar[int] = 500
    #: Seconds after which the client may try again (``Retry-After``), if it may.
    retry_after: int | None = None
    #: The ``WWW-Authenticate`` scheme of :meth:`challenge` (RFC 6750 Bearer, or Basic).
    auth_scheme: ClassVar[str] = "Bearer"

    def __init__(self, description: str = "") -> None:
        super().__init__(description or self.__class__.__doc__ or self.__class__.__name__)
        self.description = description or (self.__class__.__doc__ or "").strip()

    def challenge(self) -> dict[str, str] | None:
        """The auth-params of the ``WWW-Authenticate: Bearer`` challenge that answers
        this error (RFC 6750 §3), ``realm`` aside; None when the answer has none."""
        return None


class ConfigurationError(KeyfobError):
    """The settings or secrets are unusable."""


class IssuerUnavailable(KeyfobError):
    """A resource server has no usable keys from the issuer yet (its JWKS cannot be
    fetched); the token may well be valid, so this is not a 401."""

    error = "temporarily_unavailable"
    status_code = 503

    def __init__(self, description: str = "", *, retry_after: int = 5) -> None:
        super().__init__(description)
        self.retry_after: int = retry_after


class StoreError(KeyfobError):
    """The store failed."""


class StoreUnavailable(StoreError):
    """The store cannot be reached now; nothing was changed, retry later."""

    error = "temporarily_unavailable"
    status_code = 503

    def __init__(self, description: str = "", *, retry_after: int = 1) -> None:
        super().__init__(description)
        self.retry_after: int = retry_after


class StoreIntegrityError(StoreError):
    """The store holds data keyfob cannot read."""


class InvalidGrant(KeyfobError):
    """The refresh token is invalid, expired or revoked."""

    error = "invalid_grant"
    # RFC 6749 §5.2: token-endpoint errors are 400, invalid_grant included.
    status_code = 400


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


class ClientMismatch(InvalidGrant):
    """The refresh token was issued to another client (RFC 6749 §6); nothing changed."""


class InvalidToken(KeyfobError):
    """The access token is invalid."""

    error = "invalid_token"
    # RFC 6750 §3.1: a refused access token is 401 with a challenge naming the error.
    status_code = 401

    def challenge(self) -> dict[str, str] | None:
        return {"error": self.error, "error_description": self.description}


class MissingCredentials(InvalidToken):
    """The request carries no bearer access token."""

    def challenge(self) -> dict[str, str] | None:
        # RFC 6750 §3.1: no error code when the request had no credentials at all.
        return {}


class MalformedAccessToken(InvalidToken):
    """The access token is not a JWT keyfob accepts."""


class BadSignature(InvalidToken):
    """The access token's signature does not verify."""


class UnknownKeyId(BadSignature):
    """The access token's ``kid`` names no key in the key set (a new key, or a forgery)."""


class ExpiredAccessToken(InvalidToken):
    """The access token has expired or is not valid yet."""


class InvalidClaims(InvalidToken):
    """The access token's claims are wrong for this service."""


class AccessTokenRevoked(InvalidToken):
    """The access token's session has been revoked."""


class AuthenticationFailed(KeyfobError):
    """Wrong username or password."""

    # A wrong password is an invalid grant (400, RFC 6749 §5.2), not a failed client
    # authentication, which alone would be 401.
    error = "invalid_grant"
    status_code = 400


class UserError(KeyfobError):
    """A user-management request cannot be carried out."""

    error = "invalid_request"
    status_code = 400


class WeakPassword(UserError):
    """The password does not meet the password policy."""


class UserExists(UserError):
    """That username is already taken."""

    status_code = 409


class UserNotFound(UserError):
    """No such user."""

    status_code = 404


class InvalidRequest(KeyfobError):
    """The request is missing a parameter, repeats one, or is otherwise malformed."""

    error = "invalid_request"
    status_code = 400


class PayloadTooLarge(InvalidRequest):
    """The request body is larger than this route accepts."""

    status_code = 413


class UnsupportedMediaType(InvalidRequest):
    """The request body is not of the media type this route accepts."""

    status_code = 415


class CSRFRejected(InvalidRequest):
    """A cookie-authenticated request failed the CSRF checks."""

    status_code = 403


class InsecureCookieTransport(InvalidRequest):
    """The refresh cookie cannot be sent over plain HTTP to this host."""


class UnsupportedGrantType(KeyfobError):
    """The token endpoint does not support this grant type."""

    error = "unsupported_grant_type"
    status_code = 400


class InvalidClient(KeyfobError):
    """Client authentication failed: unknown client, wrong secret or assertion, or none."""

    error = "invalid_client"
    # RFC 6749 §5.2 allows 401 and requires it (with a challenge) when the client used
    # the Authorization header; RFC 9110 §15.5.2 requires the challenge on every 401.
    # The challenge names Basic, which the token endpoint accepts.
    status_code = 401
    auth_scheme = "Basic"

    def challenge(self) -> dict[str, str] | None:
        return {}


class UnauthorizedClient(KeyfobError):
    """The client is not registered for this grant type."""

    error = "unauthorized_client"
    status_code = 400


class InvalidScope(KeyfobError):
    """The requested scope is malformed or exceeds what was granted."""

    error = "invalid_scope"
    status_code = 400


class InvalidClientMetadata(KeyfobError):
    """A client registration is refused (RFC 7591 §3.2.2)."""

    error = "invalid_client_metadata"
    status_code = 400


class ClientExists(InvalidClientMetadata):
    """That client id is already registered."""

    status_code = 409


class ClientNotFound(InvalidClientMetadata):
    """No such client."""

    status_code = 404


class NotFound(KeyfobError):
    """There is nothing here."""

    error = "not_found"
    status_code = 404


class RateLimited(KeyfobError):
    """Too many requests; retry after ``retry_after`` seconds."""

    error = "too_many_requests"
    status_code = 429

    def __init__(self, description: str = "", *, retry_after: int = 1) -> None:
        super().__init__(description)
        self.retry_after: int = retry_after


class PermissionDenied(KeyfobError):
    """The caller may not do this."""

    error = "insufficient_scope"
    status_code = 403

    def __init__(self, description: str = "", *, required_scopes: Iterable[str] = ()) -> None:
        super().__init__(description)
        #: The scopes the resource needs, named in the challenge when known.
        self.required_scopes = tuple(required_scopes)

    def challenge(self) -> dict[str, str] | None:
        # RFC 6750 §3.1: a 403 insufficient_scope names the scope the resource needs.
        params = {"error": self.error, "error_description": self.description}
        if self.required_scopes:
            params["scope"] = " ".join(self.required_scopes)
        return params
