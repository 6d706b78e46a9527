"""keyfob for Starlette: verify bearer access tokens locally, answer RFC 6750 errors.

    from starlette.applications import Starlette
    from starlette.authentication import requires
    from keyfob.integrations.starlette import keyfob_middleware

    app = Starlette(routes=[...], middleware=[keyfob_middleware(manager)])

    @requires("authenticated")
    async def things(request):
        principal = request.user.principal   # a keyfob.Principal

:class:`KeyfobBackend` is Starlette's seam (``AuthenticationBackend``). A request
without an ``Authorization: Bearer`` header is simply unauthenticated (routes decide
with ``@requires``); a request whose token is refused gets a 401 JSON answer with
``WWW-Authenticate: Bearer error="invalid_token"`` from :func:`on_auth_error`. The
credentials are ``"authenticated"`` plus the token's scopes.

The verifier is a :class:`~keyfob.SessionManager` (the auth server's, in the same
process) or anything with ``verify_access_token(token) -> Principal``. A manager also
pulls in sessions revoked by other processes before each check
(:meth:`~keyfob.SessionManager.verify_access_token_fresh`).
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from typing import Protocol, runtime_checkable

try:
    from starlette.authentication import (
        AuthCredentials,
        AuthenticationBackend,
        AuthenticationError,
        BaseUser,
    )
    from starlette.middleware import Middleware
    from starlette.middleware.authentication import AuthenticationMiddleware
    from starlette.requests import HTTPConnection
    from starlette.responses import JSONResponse, Response
except ImportError as exc:  # pragma: no cover - depends on the installed extras
    raise ImportError(
        f"keyfob.integrations.starlette needs Starlette: pip install 'keyfob[server]' ({exc})"
    ) from exc

from ..core.models import Principal
from ..exceptions import InvalidToken, KeyfobError, PermissionDenied, StoreUnavailable
from ..manager import SessionManager
from ..oauth.errors import NO_STORE_HEADERS, error_body
from ..transports.bearer import MissingCredentials, bearer_token, www_authenticate

__all__ = [
    "KeyfobAuthenticationError",
    "KeyfobBackend",
    "KeyfobUser",
    "TokenVerifier",
    "error_response",
    "keyfob_middleware",
    "on_auth_error",
    "verify_bearer",
]

# RFC 6749 §3.3: a scope token is %x21 / %x23-5B / %x5D-7E.
_SCOPE_TOKEN = re.compile(r"[\x21\x23-\x5b\x5d-\x7e]+")


@runtime_checkable
class TokenVerifier(Protocol):
    """What checks an access token: a SessionManager, or a JWKS-backed verifier."""

    def verify_access_token(self, token: str) -> Principal: ...


async def verify_bearer(verifier: TokenVerifier, authorization: Sequence[str]) -> Principal:
    """The principal of a request's ``Authorization`` header values.

    Raises :class:`~keyfob.exceptions.InvalidToken` (``MissingCredentials`` when there is
    no bearer token) and, for a manager whose store is down, ``StoreUnavailable``.
    """
    token = bearer_token(authorization)
    if isinstance(verifier, SessionManager):
        # Revocations made by other workers count at once (spec §3 item 4).
        return await verifier.verify_access_token_fresh(token)
    return verifier.verify_access_token(token)


def error_response(exc: KeyfobError, *, required_scopes: Iterable[str] = ()) -> Response:
    """The RFC 6750 answer for a refused request, as JSON ``{error, error_description}``.

    401 with a ``WWW-Authenticate`` challenge for a missing or refused token; 403
    ``insufficient_scope`` naming the scopes needed; 503 with ``Retry-After`` when the
    store is down; anything else is a 500 that says nothing about the cause.
    """
    headers = dict(NO_STORE_HEADERS)
    if isinstance(exc, MissingCredentials):
        # RFC 6750 §3.1: no error code when the request had no credentials at all.
        headers["WWW-Authenticate"] = www_authenticate()
        status = 401
    elif isinstance(exc, InvalidToken):
        headers["WWW-Authenticate"] = www_authenticate(error=exc.error, description=exc.description)
        status = 401
    elif isinstance(exc, PermissionDenied):
        challenge = www_authenticate(error=exc.error, description=exc.description)
        scope = " ".join(s for s in required_scopes if _SCOPE_TOKEN.fullmatch(s))
        headers["WWW-Authenticate"] = challenge + (f', scope="{scope}"' if scope else "")
        status = 403
    elif isinstance(exc, StoreUnavailable):
        headers["Retry-After"] = str(max(1, int(exc.retry_after)))
        status = 503
    else:
        return JSONResponse(error_body("server_error", "internal error"), 500, headers)
    return JSONResponse(error_body(exc.error, exc.description), status, headers)


class KeyfobUser(BaseUser):
    """``request.user`` of an authenticated request; ``principal`` is the token's."""

    def __init__(self, principal: Principal) -> None:
        self.principal = principal

    @property
    def is_authenticated(self) -> bool:
        return True

    @property
    def display_name(self) -> str:
        return self.principal.user_id

    @property
    def identity(self) -> str:
        return self.principal.user_id

    def __repr__(self) -> str:
        return f"KeyfobUser(user_id={self.principal.user_id!r}, sid={self.principal.sid!r})"


class KeyfobAuthenticationError(AuthenticationError):
    """A refused token (or a store that is down), carrying keyfob's own error."""

    def __init__(self, error: KeyfobError) -> None:
        super().__init__(error.description)
        self.error = error


class KeyfobBackend(AuthenticationBackend):
    """Verifies ``Authorization: Bearer`` access tokens locally (no call to the server)."""

    def __init__(self, verifier: TokenVerifier) -> None:
        if not isinstance(verifier, TokenVerifier):
            raise TypeError("KeyfobBackend needs a SessionManager or a token verifier")
        self.verifier = verifier

    async def authenticate(self, conn: HTTPConnection) -> tuple[AuthCredentials, BaseUser] | None:
        values = conn.headers.getlist("authorization")
        if not values:
            return None
        try:
            principal = await verify_bearer(self.verifier, values)
        except MissingCredentials:
            return None  # another scheme (Basic, …): not ours to judge
        except (InvalidToken, StoreUnavailable) as exc:
            raise KeyfobAuthenticationError(exc) from None
        scopes = ["authenticated", *sorted(principal.scopes)]
        return AuthCredentials(scopes), KeyfobUser(principal)


def on_auth_error(conn: HTTPConnection, exc: AuthenticationError) -> Response:
    """``AuthenticationMiddleware``'s ``on_error``: keyfob's JSON answer for the refusal."""
    if isinstance(exc, KeyfobAuthenticationError):
        return error_response(exc.error)
    return error_response(InvalidToken(str(exc) or "the access token is invalid"))


def keyfob_middleware(verifier: TokenVerifier) -> Middleware:
    """``Middleware(AuthenticationMiddleware, ...)`` with :class:`KeyfobBackend`."""
    return Middleware(
        AuthenticationMiddleware, backend=KeyfobBackend(verifier), on_error=on_auth_error
    )
