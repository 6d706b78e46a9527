"""The OAuth 2.0 endpoints: token (RFC 6749 §6), revocation (RFC 7009), introspection
(RFC 7662).

Form-encoded parameters; a parameter sent twice is ``invalid_request`` (§3.2). Each
request first says which client sent it (:mod:`keyfob.oauth.client_auth`) and proves it
if the client is confidential (``invalid_client``). A request that names no client is
keyfob's own first-party client (public), so the first-party refresh flow works
unchanged and pays no registry lookup.

* token: the ``authorization_code`` grant (RFC 6749 §4.1.3 with PKCE, RFC 7636 §4.5:
  ``code``, ``redirect_uri``, ``code_verifier``; every mismatch is ``invalid_grant`` and a
  code presented twice revokes the session issued from it), and the ``refresh_token``
  grant, bound to the client the session was issued to (``invalid_grant`` for another
  client's token, with nothing changed), a ``scope`` within the session's
  (``invalid_scope``). The client must be registered for the grant
  (``unauthorized_client``); any other grant is ``unsupported_grant_type``. A session
  with the ``openid`` scope gets an ``id_token`` from the code (with the request's
  ``nonce``, OIDC Core §3.1.3.3) and a fresh one with each refresh (§12.2).
* revoke: ends the session of a refresh or an access token of the client; 200 for
  anything else alike (RFC 7009 §2.2).
* introspect: confidential clients only; ``{"active": false}`` for any token that is
  not active, whatever the reason.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from ..core.clients import Client
from ..core.id_tokens import has_openid
from ..core.models import DeviceInfo, TokenPair
from ..exceptions import InvalidClient, InvalidRequest, UnauthorizedClient, UnsupportedGrantType
from ..oauth.client_auth import read_client_credentials
from ..oauth.errors import NO_STORE_HEADERS
from ..oauth.metadata import INTROSPECTION_PATH, REVOCATION_PATH, TOKEN_PATH
from .context import ServerContext, client_address
from .requests import read_form
from .responses import json_response, token_response

__all__ = ["OAuthRoutes"]

#: The longest token a revocation or introspection request may name: a refresh token is
#: 98 characters, an access token well under the verifier's 8 KiB cap.
_MAX_TOKEN = 8192


class OAuthRoutes:
    def __init__(self, ctx: ServerContext) -> None:
        self.ctx = ctx
        self.manager = ctx.manager
        issuer = ctx.settings.issuer.rstrip("/")
        self._token_url = issuer + TOKEN_PATH
        self._revocation_url = issuer + REVOCATION_PATH
        self._introspection_url = issuer + INTROSPECTION_PATH
        #: grant_type -> its handler (RFC 6749 §4-§6); a grant is added here.
        self._grants: dict[str, Callable[[Request, dict[str, str]], Awaitable[Response]]] = {
            "refresh_token": self._refresh_grant,
            "authorization_code": self._authorization_code_grant,
        }

    def routes(self) -> list[Route]:
        """The token endpoint: a hot route (taken before Starlette's stack, :mod:`.hot`)."""
        return [Route(TOKEN_PATH, self.token, methods=["POST"])]

    def token_routes(self) -> list[Route]:
        """Revocation and introspection."""
        return [
            Route(REVOCATION_PATH, self.revoke, methods=["POST"]),
            Route(INTROSPECTION_PATH, self.introspect, methods=["POST"]),
        ]

    async def _client(self, request: Request, form: dict[str, str], url: str) -> Client:
        credentials = read_client_credentials(request.headers.getlist("authorization"), form)
        # RFC 7523 §3: the assertion's aud is the token endpoint; the issuer (added by
        # the manager) and the URL of the endpoint called are accepted too.
        return await self.manager.authenticate_client(credentials, audiences=(self._token_url, url))

    async def token(self, request: Request) -> Response:
        form = await read_form(request)
        grant_type = form.get("grant_type")
        if grant_type is None:
            raise InvalidRequest("grant_type is required")
        grant = self._grants.get(grant_type)
        if grant is None:
            supported = ", ".join(self._grants)
            raise UnsupportedGrantType(f"the grants supported are: {supported}")
        return await grant(request, form)

    async def _refresh_grant(self, request: Request, form: dict[str, str]) -> Response:
        """RFC 6749 §6."""
        refresh_token = form.get("refresh_token")
        if refresh_token is None:
            raise InvalidRequest("refresh_token is required")
        client = await self._client(request, form, self._token_url)
        if not client.allows_grant("refresh_token"):
            raise UnauthorizedClient("the client is not registered for the refresh_token grant")
        pair = await self.manager.refresh(
            await self.ctx.parse_refresh(refresh_token),
            client_id=client.client_id,
            scope=form.get("scope"),
        )
        # OIDC Core §12.2: no nonce on a refresh (there is no authorization request).
        return token_response(self._with_id_token(_token_body(pair), pair, nonce=None))

    def _with_id_token(
        self,
        body: dict[str, object],
        pair: TokenPair,
        *,
        nonce: str | None,
    ) -> dict[str, object]:
        """``body`` with an ``id_token`` when the session is an OpenID Connect one; its
        auth_time is the sign-in, on the code's exchange and every refresh after."""
        if has_openid(pair.session.scope):
            body["id_token"] = self.manager.mint_id_token(
                pair.session,
                nonce=nonce,
                auth_time=pair.session.signed_in_at,
                access_token=pair.access_token,
            )
        return body

    async def _authorization_code_grant(self, request: Request, form: dict[str, str]) -> Response:
        """RFC 6749 §4.1.3, RFC 7636 §4.5."""
        code = form.get("code")
        if code is None:
            raise InvalidRequest("code is required")
        client = await self._client(request, form, self._token_url)
        if not client.allows_grant("authorization_code"):
            raise UnauthorizedClient(
                "the client is not registered for the authorization_code grant"
            )
        # redirect_uri and code_verifier are checked against the code (invalid_grant when
        # missing or different); the lengths need no check here: they are compared, not
        # stored, and the form's size is bounded.
        exchange = await self.manager.exchange_authorization_code(
            code,
            client=client,
            redirect_uri=form.get("redirect_uri"),
            code_verifier=form.get("code_verifier"),
            device=DeviceInfo(
                user_agent=request.headers.get("user-agent", ""), ip=client_address(request)
            ),
        )
        body = _token_body(exchange.pair)
        return token_response(self._with_id_token(body, exchange.pair, nonce=exchange.nonce))

    async def revoke(self, request: Request) -> Response:
        form = await read_form(request)
        token = _token_parameter(form)
        client = await self._client(request, form, self._revocation_url)
        await self.manager.revoke_token(token, client=client)
        # RFC 7009 §2.2: 200 whether or not there was anything to revoke.
        return Response(None, 200, NO_STORE_HEADERS)

    async def introspect(self, request: Request) -> Response:
        form = await read_form(request)
        token = _token_parameter(form)
        client = await self._client(request, form, self._introspection_url)
        if not client.confidential:
            # RFC 7662 §2.1 and §4: only authenticated callers, or the endpoint becomes a
            # token-scanning oracle.
            raise InvalidClient("introspection is for authenticated confidential clients")
        return json_response(await self.manager.introspect(token), 200, NO_STORE_HEADERS)


def _token_body(pair: TokenPair) -> dict[str, object]:
    """A successful token response's JSON (RFC 6749 §5.1), the same for every grant."""
    body: dict[str, object] = {
        "access_token": pair.access_token,
        "token_type": pair.token_type,
        "expires_in": pair.expires_in,
        "refresh_token": pair.refresh_token.value,
    }
    if pair.scope:
        body["scope"] = pair.scope
    return body


def _token_parameter(form: dict[str, str]) -> str:
    """The ``token`` of a revocation or introspection request. ``token_type_hint`` is
    only a hint (RFC 7009 §2.1, RFC 7662 §2.1): keyfob tells the two kinds apart by
    their form, so any value of it is accepted and ignored."""
    token = form.get("token")
    if token is None:
        raise InvalidRequest("token is required")
    if len(token) > _MAX_TOKEN:
        raise InvalidRequest(f"token is longer than {_MAX_TOKEN} characters")
    return token
