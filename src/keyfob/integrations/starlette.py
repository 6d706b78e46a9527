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

The verifier is any :class:`~keyfob.transports.bearer.TokenVerifier`: a
:class:`~keyfob.SessionManager` (the auth server's, in the same process, which pulls in
sessions revoked by other processes before each check) or anything else with
``async verify_access_token_fresh(token) -> Principal``. Errors are answered by
:func:`keyfob.oauth.errors.render_error`, as keyfob's own server answers them.

Behind a proxy, :func:`forwarded_middleware` gives your routes the client's address
(``request.client``) from the proxies you trust, by keyfob's rules
(:mod:`keyfob.transports.forwarded`); keyfob's own app (``create_app``, mounted or not)
already does this with ``settings.forwarded_allow_ips``.
"""

from __future__ import annotations

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

from collections.abc import Iterable

from ..core.models import Principal
from ..exceptions import (
    InvalidToken,
    IssuerUnavailable,
    KeyfobError,
    MissingCredentials,
    StoreUnavailable,
)
from ..oauth.errors import render_error
from ..server.forwarded import ForwardedMiddleware
from ..transports.bearer import TokenVerifier, verify_bearer
from ..transports.forwarded import TrustedProxies

__all__ = [
    "KeyfobAuthenticationError",
    "KeyfobBackend",
    "KeyfobUser",
    "error_response",
    "forwarded_middleware",
    "keyfob_middleware",
    "on_auth_error",
]


def error_response(exc: KeyfobError) -> Response:
    """keyfob's JSON answer ``{error, error_description}`` for ``exc``: 401 with a
    ``WWW-Authenticate`` challenge for a missing or refused token, 403
    ``insufficient_scope`` naming the scopes needed, 503 with ``Retry-After`` when the
    store is down, a bare 500 for a fault (see :func:`keyfob.oauth.errors.render_error`).
    """
    status, body, headers = render_error(exc)
    return JSONResponse(body, status, headers)


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
            raise TypeError(
                "KeyfobBackend needs a token verifier (async verify_access_token_fresh), "
                "such as a SessionManager"
            )
        self.verifier = verifier

    async def authenticate(self, conn: HTTPConnection) -> tuple[AuthCredentials, BaseUser] | None:
        values = conn.headers.getlist("authorization")
        if not values:
            return None
        try:
            principal = await verify_bearer(self.verifier, values)
        except MissingCredentials:
            return None  # another scheme (Basic, …): not ours to judge
        except (InvalidToken, StoreUnavailable, IssuerUnavailable) as exc:
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


def forwarded_middleware(trusted_proxies: TrustedProxies | Iterable[str]) -> Middleware:
    """``Middleware(ForwardedMiddleware, ...)``: ``request.client`` is the client behind
    the trusted proxies (addresses or CIDRs, e.g. ``settings.forwarded_allow_ips``).
    Run uvicorn with ``--no-proxy-headers`` so that its own rules do not decide first."""
    return Middleware(ForwardedMiddleware, proxies=trusted_proxies)
