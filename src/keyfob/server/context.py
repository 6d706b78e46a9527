"""What every route of one app shares: settings, the manager, the limiter, the transport."""

from __future__ import annotations

from dataclasses import dataclass

from starlette.requests import Request

from ..core.models import Principal
from ..core.refresh_tokens import ParsedRefreshToken
from ..manager import SessionManager
from ..settings import Settings
from ..transports.bearer import verify_bearer
from ..transports.refresh import RefreshTransport
from .ratelimit import RateLimiter
from .request_log import note_session

__all__ = ["ServerContext", "client_address", "request_scheme"]


@dataclass(frozen=True, slots=True)
class ServerContext:
    settings: Settings
    manager: SessionManager
    limiter: RateLimiter
    #: How the refresh token travels: cookie policy, CSRF, cookie or body (spec §5).
    transport: RefreshTransport

    async def principal(self, request: Request) -> Principal:
        """The caller of a protected route, from its bearer access token.

        Revocations made by other processes are pulled in first when the store says
        there may be any, so a revoked session is refused by every worker at once.
        """
        principal = await verify_bearer(self.manager, request.headers.getlist("authorization"))
        note_session(principal.user_id, principal.sid)  # for the request log
        return principal

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


def request_scheme(request: Request) -> str:
    """``http`` or ``https`` (``ws``/``wss``), as the server received the request."""
    scheme: str = request.scope.get("scheme", "http")
    return scheme
