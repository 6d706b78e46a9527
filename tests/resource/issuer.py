"""A keyfob issuer in-process, for resource-server tests: its JWKS and tokens minted ahead.

Tokens are minted once, in one event loop, so that sync tests (Flask, Django, threads)
use them as plain strings.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from dataclasses import dataclass

import httpx

from keyfob import SessionManager
from keyfob.testing import FAST_SETTINGS, FrozenClock, MemoryStore

ISSUER = "https://issuer.test"
JWKS_URI = f"{ISSUER}/.well-known/jwks.json"


@dataclass(frozen=True)
class MintedTokens:
    jwks: dict[str, object]
    #: By name: "plain" (no scope), "read" (notes:read), "read write", "expired", "revoked".
    tokens: dict[str, str]
    revoked_sid: str
    revoked_at: float
    #: A second key set (another issuer's keys) and a token signed by it.
    foreign_jwks: dict[str, object]
    foreign_token: str


def mint_tokens() -> MintedTokens:
    return asyncio.run(_mint())


async def _mint() -> MintedTokens:
    now = time.time()
    clock = FrozenClock(now - 3600)  # an hour ago: the expired token is minted first
    settings = FAST_SETTINGS.replace(issuer=ISSUER)
    async with SessionManager(settings, MemoryStore(), clock=clock) as manager:
        user = await manager.register("rita", "correct horse battery staple")
        expired = (await manager.issue(user.id)).access_token
        clock.set(now)
        tokens = {
            "plain": (await manager.issue(user.id)).access_token,
            "read": (await manager.issue(user.id, scope="notes:read")).access_token,
            "read write": (
                await manager.issue(user.id, scope="notes:read notes:write")
            ).access_token,
        }
        revoked = await manager.issue(user.id)
        tokens["revoked"] = revoked.access_token
        tokens["expired"] = expired
        jwks = manager.jwks()
    # Same issuer name, its own store and so its own signing key: an impostor's tokens.
    async with SessionManager(settings, MemoryStore(), clock=FrozenClock(now)) as stranger:
        someone = await stranger.register("mallory", "correct horse battery staple")
        foreign_token = (await stranger.issue(someone.id)).access_token
        foreign_jwks = stranger.jwks()
    return MintedTokens(jwks, tokens, revoked.session.sid, now, foreign_jwks, foreign_token)


class JWKSEndpoint:
    """A programmable JWKS endpoint for ``httpx.MockTransport``: counts its requests."""

    def __init__(self, jwks: dict[str, object]) -> None:
        self.jwks = jwks
        self.requests: list[httpx.Request] = []
        self.respond: Callable[[httpx.Request], httpx.Response] | None = None
        self.cache_control = "public, max-age=300"
        self.etag: str | None = None

    def __call__(self, request: httpx.Request) -> httpx.Response:
        self.requests.append(request)
        if self.respond is not None:
            return self.respond(request)
        headers = {"Cache-Control": self.cache_control}
        if self.etag is not None:
            headers["ETag"] = self.etag
            if request.headers.get("if-none-match") == self.etag:
                return httpx.Response(304, headers=headers)
        return httpx.Response(200, json=self.jwks, headers=headers)

    def client(self) -> httpx.Client:
        return httpx.Client(transport=httpx.MockTransport(self))

    def async_client(self) -> httpx.AsyncClient:
        return httpx.AsyncClient(transport=httpx.MockTransport(self))
