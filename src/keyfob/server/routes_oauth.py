"""``POST /oauth/token``: the RFC 6749 token endpoint (refresh-token grant, §6).

Form-encoded parameters; a parameter sent twice is ``invalid_request`` (§3.2), any
grant other than ``refresh_token`` is ``unsupported_grant_type``. Clients are public
(``token_endpoint_auth_methods_supported: ["none"]``): the refresh token is the
credential, and ``client_id``, when sent, is checked for syntax only.
"""

from __future__ import annotations

import re

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from ..exceptions import InvalidRequest, UnsupportedGrantType
from ..oauth.metadata import TOKEN_PATH
from .context import ServerContext
from .requests import read_form
from .responses import token_response

__all__ = ["OAuthRoutes"]

# RFC 6749 Appendix A.1: client-id = *VSCHAR.
_CLIENT_ID = re.compile(r"[\x20-\x7e]{1,255}")


class OAuthRoutes:
    def __init__(self, ctx: ServerContext) -> None:
        self.ctx = ctx
        self.manager = ctx.manager

    def routes(self) -> list[Route]:
        return [Route(TOKEN_PATH, self.token, methods=["POST"])]

    async def token(self, request: Request) -> Response:
        form = await read_form(request)
        grant_type = form.get("grant_type")
        if grant_type is None:
            raise InvalidRequest("grant_type is required")
        if grant_type != "refresh_token":
            raise UnsupportedGrantType("only the refresh_token grant is supported")
        refresh_token = form.get("refresh_token")
        if refresh_token is None:
            raise InvalidRequest("refresh_token is required")
        client_id = form.get("client_id")
        if client_id is not None and not _CLIENT_ID.fullmatch(client_id):
            raise InvalidRequest("client_id is malformed")
        pair = await self.manager.refresh(await self.ctx.parse_refresh(refresh_token))
        body: dict[str, object] = {
            "access_token": pair.access_token,
            "token_type": pair.token_type,
            "expires_in": pair.expires_in,
            "refresh_token": pair.refresh_token.value,
        }
        if pair.scope:
            body["scope"] = pair.scope
        return token_response(body)
