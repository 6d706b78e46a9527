"""The first-party API under ``/auth`` (spec §4): register, login, refresh, logout,
logout-all, the sessions list, and ``/auth/me``.

Token routes (login, refresh) answer with ``Cache-Control: no-store``. The refresh token
travels in the cookie (the default) or in the JSON body (``transport: "body"``); a request
that carries both is refused as ambiguous (spec §5). Those rules, and the cookie's CSRF
and ``Origin`` checks, are :class:`~keyfob.transports.refresh.RefreshTransport`'s: the
handlers here read a request's values for it and turn its answers into responses.
"""

from __future__ import annotations

import contextlib
import re

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from ..core.clients import FIRST_PARTY_CLIENT_ID
from ..core.models import DeviceInfo, Principal, RevokeReason, Session, TokenPair
from ..exceptions import (
    AuthenticationFailed,
    InvalidGrant,
    InvalidRequest,
    MalformedToken,
    NotFound,
)
from ..transports.cookies import CookiePolicy
from .context import ServerContext, client_address, request_scheme
from .errors import error_response
from .known_devices import KnownDevices
from .ratelimit import account_key
from .request_log import note_session
from .requests import (
    MAX_BODY_BYTES,
    has_body,
    optional_text_field,
    read_json_object,
    text_field,
)
from .responses import no_content, private_response, token_response

__all__ = ["AuthRoutes"]

_MAX_CREDENTIAL = 1024
_SID = re.compile(r"[A-Za-z0-9_-]{1,64}")


class AuthRoutes:
    """Route handlers bound to one app's :class:`ServerContext`."""

    def __init__(self, ctx: ServerContext) -> None:
        self.ctx = ctx
        self.manager = ctx.manager
        self.limiter = ctx.limiter
        self.transport = ctx.transport
        self.devices = KnownDevices.from_settings(ctx.settings)

    def hot_routes(self) -> list[Route]:
        """The routes every client calls all the time (answered first: :mod:`.hot`)."""
        return [
            Route("/auth/refresh", self.refresh, methods=["POST"]),
            Route("/auth/me", self.me, methods=["GET"]),
        ]

    def routes(self) -> list[Route]:
        """The other routes."""
        return [
            Route("/auth/login", self.login, methods=["POST"]),
            Route("/auth/register", self.register, methods=["POST"]),
            Route("/auth/logout", self.logout, methods=["POST"]),
            Route("/auth/logout-all", self.logout_all, methods=["POST"]),
            Route("/auth/sessions", self.list_sessions, methods=["GET"]),
            Route("/auth/sessions/{sid}", self.revoke_session, methods=["DELETE"]),
        ]

    # accounts and login

    async def register(self, request: Request) -> Response:
        await self.limiter.check_register(client_address(request))
        data = await read_json_object(request)
        username = text_field(data, "username", max_length=_MAX_CREDENTIAL)
        password = text_field(data, "password", max_length=_MAX_CREDENTIAL)
        user = await self.manager.register(username, password)
        return private_response({"id": user.id, "username": user.username}, 201)

    async def login(self, request: Request) -> Response:
        data = await read_json_object(request)
        username = text_field(data, "username", max_length=_MAX_CREDENTIAL)
        password = text_field(data, "password", max_length=_MAX_CREDENTIAL)
        transport = optional_text_field(data, "transport", max_length=16) or "cookie"
        if transport not in {"cookie", "body"}:
            raise InvalidRequest('\'transport\' must be "cookie" or "body"')
        policy = None
        if transport == "cookie":
            policy = self.transport.login_cookie_policy(request_scheme(request), request.headers)
        address = client_address(request)
        # A browser that signed in to this account before (see .known_devices).
        account = account_key(username)
        known = self.devices.identify(
            self.transport.cookie_policy(request_scheme(request), request.headers),
            request.headers.get("cookie"),
            account,
        )
        await self.limiter.check_login(address, username, device=known)
        device = DeviceInfo(user_agent=request.headers.get("user-agent", ""), ip=address)
        try:
            pair = await self.manager.login(username, password, device=device)
        except AuthenticationFailed:
            throttle = await self.limiter.login_failed(address, username, device=known)
            if throttle is not None:
                await self.manager.accounts.record_throttled(
                    username, ip=address, detail=throttle.detail
                )
            raise
        await self.limiter.login_succeeded(address, username, device=known)
        replaced = await self._end_replaced_sessions(request)
        response = self._token_answer(pair, policy)
        if policy is not None:
            response.headers.append("set-cookie", self.devices.set_cookie(policy, account))
        elif replaced:
            # A body-transport login leaves no cookie behind it: delete the dead one.
            response.headers.update(self._clear_cookie(request))
        return response

    # refresh and logout

    async def refresh(self, request: Request) -> Response:
        body_token = await _body_refresh_token(request)
        policy, cookies = self.transport.presented_cookies(
            request_scheme(request), request.headers, body_token=body_token
        )
        if body_token is not None:
            parsed = await self.ctx.parse_refresh(body_token)
            pair = await self.manager.refresh(parsed, client_id=FIRST_PARTY_CLIENT_ID)
            return self._token_answer(pair, None)
        if policy is None:  # no body token and no cookie
            raise InvalidRequest("no refresh token: send the refresh cookie or {refresh_token}")
        clear = {"Set-Cookie": self.transport.clear_cookie(policy)}
        if len(cookies) > 1:
            # A second cookie of the same name was planted (another path or domain).
            return error_response(InvalidRequest("more than one refresh cookie"), clear)
        try:
            # Bound to the first-party client: another client's refresh token must go
            # through /oauth/token, which authenticates that client (RFC 6749 §6).
            pair = await self.manager.refresh(
                await self.ctx.parse_refresh(cookies[0]), client_id=FIRST_PARTY_CLIENT_ID
            )
        except InvalidGrant as exc:
            # The cookie can never work again: delete it with the answer.
            return error_response(exc, clear)
        return self._token_answer(pair, policy)

    async def logout(self, request: Request) -> Response:
        """Revoke the current session: by refresh token (cookie or body) or access token.

        Idempotent: a token of a session that is already gone still answers 204.
        """
        body_token = await _body_refresh_token(request)
        _, cookies = self.transport.presented_cookies(
            request_scheme(request), request.headers, body_token=body_token
        )
        if body_token is not None:
            await self._logout_refresh_token(body_token)
        elif cookies:
            for value in cookies:
                await self._logout_refresh_token(value)
        elif "authorization" in request.headers:
            principal = await self.ctx.principal(request)
            await self.manager.revoke_session(
                principal.sid, reason=RevokeReason.LOGOUT, user_id=principal.user_id
            )
        return no_content(self._clear_cookie(request))

    async def logout_all(self, request: Request) -> Response:
        principal = await self.ctx.principal(request)
        sids = await self.manager.logout_all(principal.user_id)
        return private_response({"revoked": len(sids)}, 200, self._clear_cookie(request))

    # protected routes

    async def list_sessions(self, request: Request) -> Response:
        principal = await self.ctx.principal(request)
        sessions = await self.manager.list_sessions(principal.user_id)
        return private_response({"sessions": [_session_view(s, principal) for s in sessions]})

    async def revoke_session(self, request: Request) -> Response:
        principal = await self.ctx.principal(request)
        sid = request.path_params["sid"]
        # Someone else's session and no session at all look the same: 404.
        if not _SID.fullmatch(sid) or not await self.manager.revoke_session(
            sid, reason=RevokeReason.USER_REVOKED, user_id=principal.user_id
        ):
            raise NotFound("no such session")
        return no_content(self._clear_cookie(request) if sid == principal.sid else {})

    async def me(self, request: Request) -> Response:
        principal = await self.ctx.principal(request)
        return private_response(
            {
                "sub": principal.user_id,
                "sid": principal.sid,
                "client_id": principal.client_id,
                "scope": " ".join(sorted(principal.scopes)),
                "exp": principal.expires_at,
            }
        )

    # helpers

    def _token_answer(self, pair: TokenPair, policy: CookiePolicy | None) -> Response:
        note_session(pair.session.user_id, pair.session.sid)  # for the request log
        body: dict[str, object] = {
            "access_token": pair.access_token,
            "token_type": pair.token_type,
            "expires_in": pair.expires_in,
        }
        if policy is None:
            body["refresh_token"] = pair.refresh_token.value
            return token_response(body)
        cookie = self.transport.set_cookie(
            policy,
            pair.refresh_token.value,
            absolute_expires_at=pair.session.absolute_expires_at,
            now=self.manager.clock.now(),
        )
        return token_response(body, {"Set-Cookie": cookie})

    def _clear_cookie(self, request: Request) -> dict[str, str]:
        """The header that deletes the refresh cookie of the request's origin, if any."""
        policy = self.transport.cookie_policy(request_scheme(request), request.headers)
        return {} if policy is None else {"Set-Cookie": self.transport.clear_cookie(policy)}

    async def _end_replaced_sessions(self, request: Request) -> bool:
        """End the sessions of the refresh cookies a login replaces; whether it had any.

        Without this, the old cookie's session would live on, unseen, until it idled
        out. A cookie that is not keyfob's, or whose session already ended, is no error,
        and none of this is reuse: the browser merely logged in again.
        """
        cookies = self.transport.replaced_cookies(request_scheme(request), request.headers)
        for value in cookies:
            with contextlib.suppress(MalformedToken):
                await self.manager.logout(value, reason=RevokeReason.RELOGIN)
        return bool(cookies)

    async def _logout_refresh_token(self, token: str) -> None:
        # Not a token of ours: there is nothing to log out, which is what was asked.
        with contextlib.suppress(MalformedToken):
            await self.manager.logout(token)


async def _body_refresh_token(request: Request) -> str | None:
    """``refresh_token`` from a JSON body; ``None`` when there is no body or no member."""
    if not has_body(request):
        return None
    data = await read_json_object(request)
    return optional_text_field(data, "refresh_token", max_length=MAX_BODY_BYTES)


def _session_view(session: Session, principal: Principal) -> dict[str, object]:
    return {
        "sid": session.sid,
        "client_id": session.client_id,
        "device": {"user_agent": session.device.user_agent, "ip": session.device.ip},
        "created_at": int(session.created_at),
        "last_used_at": int(session.last_used_at),
        "expires_at": int(session.expires_at()),
        "current": session.sid == principal.sid,
    }
