"""OpenID Connect endpoints: userinfo (OIDC Core §5.3) and RP-initiated logout
(OpenID Connect RP-Initiated Logout 1.0).

* userinfo (GET or POST): the bearer access token must carry ``openid`` (else 403
  ``insufficient_scope``, RFC 6750 §3.1); a revoked session is 401 ``invalid_token``
  like on every protected route. JSON ``sub``, plus the profile claims when ``profile``
  was granted (:mod:`keyfob.core.id_tokens`).
* end session (GET query or POST form): ``id_token_hint`` names the session to end; it
  must be an id_token keyfob signed, expired or not. ``post_logout_redirect_uri`` must be
  registered for the client (the hint's ``aud``, or ``client_id``), and ``state`` is
  passed back to it. Then the session ends (reason ``logout``) and the browser is sent
  there with 303, or shown a "signed out" page.

Security decisions, all on the end-session endpoint (a browser navigates to it, so its
answers are pages, never JSON):

* Never an open redirect: a redirect goes only to a URI registered for the client the
  request proves (through the hint) or names; anything else is a 400 page, before any
  session is touched.
* Whoever holds an id_token may end its session, as the spec intends: an id_token proves
  the session to the client it was issued to, and ending a session gives nothing away.
  No cookie identifies a session here (keyfob keeps no browser session of its own), so a
  request without a hint ends nothing and says "signed out" all the same.
"""

from __future__ import annotations

import html
from functools import cache
from importlib import resources
from string import Template
from typing import Final
from urllib.parse import urlencode

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from ..core.clients import redirect_uri_allowed
from ..exceptions import InvalidRequest, InvalidToken
from ..oauth.errors import NO_STORE_HEADERS
from ..oauth.metadata import END_SESSION_PATH, USERINFO_PATH
from .context import ServerContext
from .requests import read_form
from .responses import html_headers, private_response

__all__ = ["OidcRoutes"]

#: The longest value of each end-session parameter keyfob reads; the others are ignored
#: (OIDC allows extensions), though a repeated one is still refused.
_MAX_PARAMETER: Final = {
    "id_token_hint": 8192,
    "post_logout_redirect_uri": 2048,
    "state": 1024,
    "client_id": 128,
}


class _Refused(Exception):
    """An end-session request that is answered with an error page (never a redirect)."""

    def __init__(self, message: str, status: int = 400) -> None:
        super().__init__(message)
        self.message = message
        self.status = status


class OidcRoutes:
    def __init__(self, ctx: ServerContext) -> None:
        self.ctx = ctx
        self.manager = ctx.manager

    def userinfo_routes(self) -> list[Route]:
        """Userinfo, for browsers too (CORS like the token endpoint)."""
        return [Route(USERINFO_PATH, self.userinfo, methods=["GET", "POST"])]

    def end_session_routes(self) -> list[Route]:
        """RP-initiated logout: a page a browser navigates to, so no CORS."""
        return [Route(END_SESSION_PATH, self.end_session, methods=["GET", "POST"])]

    async def userinfo(self, request: Request) -> Response:
        principal = await self.ctx.principal(request)
        return private_response(await self.manager.userinfo(principal))

    async def end_session(self, request: Request) -> Response:
        try:
            return await self._end_session(request)
        except _Refused as refused:
            return _page(refused.status, "Sign-out failed", refused.message, role="alert")

    async def _end_session(self, request: Request) -> Response:
        params = await _parameters(request)
        hint = None
        hint_text = params.get("id_token_hint")
        if hint_text is not None:
            try:
                hint = await self.manager.verify_id_token_hint(hint_text)
            except InvalidToken:
                raise _Refused("The id_token_hint is not an ID token this server issued.") from None
        client_id = params.get("client_id")
        if client_id is not None:
            if hint is not None and client_id != hint.client_id:
                raise _Refused("The client_id is not the audience of the ID token.")
            if await self.manager.clients.get(client_id) is None:
                raise _Refused("The client_id names no registered client.")
        elif hint is not None:
            client_id = hint.client_id
        target = params.get("post_logout_redirect_uri")
        if target is not None:
            # RP-Initiated Logout §3: redirect only to a URI registered for the client.
            client = None if client_id is None else await self.manager.clients.get(client_id)
            if client is None:
                raise _Refused("A post_logout_redirect_uri needs an id_token_hint or a client_id.")
            if not redirect_uri_allowed(client.post_logout_redirect_uris, target):
                raise _Refused("The post_logout_redirect_uri is not registered for this client.")
        # Everything is checked: only now does anything change.
        if hint is not None:
            await self.manager.end_session(hint)
        if target is None:
            return _page(200, "Signed out", "You have been signed out.", role="status")
        state = params.get("state")
        if state is not None:
            separator = "&" if "?" in target else "?"
            target = f"{target}{separator}{urlencode({'state': state})}"
        return Response(
            None,
            303,
            {**NO_STORE_HEADERS, "Location": target, "Referrer-Policy": "no-referrer"},
        )


async def _parameters(request: Request) -> dict[str, str]:
    """The query (GET) or form (POST) parameters; a repeated one, an oversized one, or a
    body that is not a form is refused. An empty value counts as omitted."""
    if request.method == "POST":
        try:
            form = await read_form(request)
        except InvalidRequest as exc:  # also 413 and 415, with their status
            raise _Refused(
                f"The request is malformed: {exc.description}", exc.status_code
            ) from None
        items = list(form.items())
    else:
        items = request.query_params.multi_items()
    params: dict[str, str] = {}
    seen: set[str] = set()
    for name, value in items:
        if name in seen:
            raise _Refused(f"The parameter {name[:40]} is repeated.")
        seen.add(name)
        limit = _MAX_PARAMETER.get(name)
        if limit is None or not value:
            continue
        if len(value) > limit:
            raise _Refused(f"The parameter {name} is longer than {limit} characters.")
        params[name] = value
    return params


@cache
def _template() -> Template:
    text = resources.files(__package__ or "keyfob.server").joinpath("templates", "end_session.html")
    return Template(text.read_text(encoding="utf-8"))


def _page(status: int, title: str, message: str, *, role: str) -> Response:
    """A small HTML page under the pages' security headers, never stored by a cache."""
    body = _template().substitute(
        title=html.escape(title), message=html.escape(message), role=html.escape(role)
    )
    return Response(
        body,
        status,
        html_headers(NO_STORE_HEADERS),
        media_type="text/html; charset=utf-8",
    )
