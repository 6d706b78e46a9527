"""What every route of one app shares: settings, the manager, the limiter, the origins."""

from __future__ import annotations

from dataclasses import dataclass

from starlette.requests import Request

from ..core.models import Principal
from ..core.refresh_tokens import ParsedRefreshToken
from ..manager import SessionManager
from ..settings import Settings
from ..transports.bearer import bearer_token
from ..transports.cookies import CookiePolicy, clear_refresh_cookie, read_refresh_cookie
from ..transports.csrf import check_csrf, normalize_origin
from .ratelimit import RateLimiter

__all__ = ["ServerContext", "client_address"]


@dataclass(frozen=True, slots=True)
class ServerContext:
    settings: Settings
    manager: SessionManager
    limiter: RateLimiter
    #: Normalized origins allowed for cookie-authenticated requests (spec §5).
    allowed_origins: frozenset[str]

    def cookie_policy(self, request: Request) -> CookiePolicy | None:
        """The refresh cookie for this request's origin; ``None`` where none may travel."""
        return CookiePolicy.for_request(
            self.settings.cookie_mode,
            scheme=request.scope.get("scheme", "http"),
            host=request.headers.get("host", ""),
            insecure_dev_cookies=self.settings.insecure_dev_cookies,
        )

    def refresh_cookies(self, request: Request, policy: CookiePolicy | None) -> tuple[str, ...]:
        if policy is None:
            return ()
        return read_refresh_cookie(policy, request.headers.get("cookie"))

    def clear_cookie_headers(self, policy: CookiePolicy | None) -> dict[str, str]:
        return {} if policy is None else {"Set-Cookie": clear_refresh_cookie(policy)}

    def own_origin(self, request: Request) -> str:
        return normalize_origin(
            f"{request.scope.get('scheme', 'http')}://{request.headers.get('host', '')}"
        )

    def check_csrf(self, request: Request) -> None:
        """The CSRF checks of a cookie-authenticated request (spec §5)."""
        headers = request.headers
        check_csrf(
            csrf_header=headers.get("x-keyfob-csrf"),
            origin=headers.get("origin"),
            sec_fetch_site=headers.get("sec-fetch-site"),
            allowed_origins=self.allowed_origins,
            own_origin=self.own_origin(request),
        )

    async def principal(self, request: Request) -> Principal:
        """The caller of a protected route, from its bearer access token.

        Revocations made by other processes are pulled in first when the store says
        there may be any, so a revoked session is refused by every worker at once.
        """
        token = bearer_token(request.headers.getlist("authorization"))
        return await self.manager.verify_access_token_fresh(token)

    async def parse_refresh(self, refresh_token: str) -> ParsedRefreshToken:
        """Check the token's MAC (no store access), then spend one unit of its session's
        refresh budget. A forged token fails first, so it cannot spend a real session's
        budget; pass the result to ``manager.refresh`` so the MAC is checked once."""
        parsed = self.manager.parse_refresh_token(refresh_token)
        await self.limiter.check_refresh(parsed.sid)
        return parsed


def client_address(request: Request) -> str:
    client = request.client
    return client.host if client is not None else "unknown"
