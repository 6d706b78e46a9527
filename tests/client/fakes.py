"""A fake token endpoint and a fake API behind ``httpx.MockTransport``, for unit tests.

``FakeAuthServer`` mints JWT-shaped access tokens (unsigned: the client only reads
``exp``) and numbered refresh tokens, answers refreshes at ``TOKEN_URL``, and can be told
to fail the next refreshes (503 with ``Retry-After``, 429, a network error, invalid_grant).
Its API answers at any other URL, checks the bearer token like a resource server, and
records every request it saw, so tests can look at what travelled where.
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import json
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from urllib.parse import parse_qs

import httpx

from keyfob.client import OAuthTokenEndpoint, TokenSet

TOKEN_URL = "https://auth.example/oauth/token"
API = "https://api.example"
CLIENT_ID = "cli"


def access_token(n: int, exp: float) -> str:
    """A JWT-shaped token whose payload says ``exp`` (the client never verifies it)."""

    def part(data: dict[str, object]) -> str:
        return base64.urlsafe_b64encode(json.dumps(data).encode()).rstrip(b"=").decode()

    return f"{part({'alg': 'none', 'typ': 'at+jwt'})}.{part({'exp': exp, 'n': n})}.c2lnbmF0dXJl"


def refresh_token(n: int) -> str:
    """The server's n-th refresh token: distinct all along, like a real one."""
    return f"rt-{n:04d}-" + hashlib.sha256(str(n).encode()).hexdigest()[:40]


@dataclass
class Failure:
    status: int = 503
    retry_after: str | None = "0"
    error: str = "temporarily_unavailable"
    network: bool = False


@dataclass
class FakeAuthServer:
    """Token endpoint + API; time comes from ``clock`` so expiry is driven by the test."""

    clock: Callable[[], float]
    access_ttl: float = 900.0
    delay: float = 0.0  # seconds each refresh takes: widens races on purpose
    generation: int = 0
    failures: list[Failure] = field(default_factory=list)
    refreshes: list[str] = field(default_factory=list)  # the refresh token of each attempt
    requests: list[httpx.Request] = field(default_factory=list)
    mutex: threading.Lock = field(default_factory=threading.Lock)
    revoked: bool = False
    api_rejects: int = 0
    api_min_generation: int = 0  # the API refuses access tokens older than this

    def endpoint(self) -> OAuthTokenEndpoint:
        return OAuthTokenEndpoint(TOKEN_URL, client_id=CLIENT_ID)

    def issue(self) -> TokenSet:
        """The pair a login would give (generation 0)."""
        return TokenSet(
            refresh_token=refresh_token(0),
            access_token=self.current_access(),
            expires_at=self.clock() + self.access_ttl,
        )

    def current_access(self) -> str:
        return access_token(self.generation, self.clock() + self.access_ttl)

    # sync and async handlers share one decision; only the delay differs.

    def handler(self, request: httpx.Request) -> httpx.Response:
        self._record(request)
        if request.url == TOKEN_URL and self.delay:
            time.sleep(self.delay)
        return self._answer(request)

    async def async_handler(self, request: httpx.Request) -> httpx.Response:
        self._record(request)
        if request.url == TOKEN_URL and self.delay:
            await asyncio.sleep(self.delay)
        return self._answer(request)

    def _record(self, request: httpx.Request) -> None:
        request.read()
        with self.mutex:
            self.requests.append(request)

    def _answer(self, request: httpx.Request) -> httpx.Response:
        if request.url == TOKEN_URL:
            return self._token(request)
        return self._api(request)

    def _token(self, request: httpx.Request) -> httpx.Response:
        form = {k: v[0] for k, v in parse_qs(request.content.decode()).items()}
        with self.mutex:
            self.refreshes.append(form.get("refresh_token", ""))
            if self.failures:
                failure = self.failures.pop(0)
                if failure.network:
                    raise httpx.ReadError("connection reset", request=request)
                headers = {"Retry-After": failure.retry_after} if failure.retry_after else {}
                body = {"error": failure.error, "error_description": "try later"}
                return httpx.Response(failure.status, json=body, headers=headers)
            if form.get("grant_type") != "refresh_token" or form.get("client_id") != CLIENT_ID:
                return httpx.Response(400, json={"error": "invalid_request"})
            presented = form.get("refresh_token")
            # keyfob's grace rule: the previous token gets the identical successor again.
            in_grace = self.generation > 0 and presented == refresh_token(self.generation - 1)
            if self.revoked or (presented != refresh_token(self.generation) and not in_grace):
                body = {"error": "invalid_grant", "error_description": "session revoked"}
                return httpx.Response(400, json=body)
            if not in_grace:
                self.generation += 1
            return httpx.Response(
                200,
                json={
                    "access_token": self.current_access(),
                    "token_type": "Bearer",
                    "expires_in": int(self.access_ttl),
                    "refresh_token": refresh_token(self.generation),
                },
                headers={"Cache-Control": "no-store"},
            )

    def _api(self, request: httpx.Request) -> httpx.Response:
        """200 for the current generation's access token; 401 invalid_token otherwise, or
        for the next ``api_rejects`` requests (a token the resource server stopped taking)."""
        with self.mutex:
            generation = _generation(request.headers.get("authorization", ""))
            valid = generation == self.generation and generation >= self.api_min_generation
            if valid and self.api_rejects:
                self.api_rejects -= 1
                valid = False
        if valid:
            return httpx.Response(200, json={"ok": True, "body": request.content.decode()})
        challenge = 'Bearer realm="api", error="invalid_token", error_description="expired"'
        return httpx.Response(401, headers={"WWW-Authenticate": challenge})


def _generation(authorization: str) -> int | None:
    try:
        payload = authorization.removeprefix("Bearer ").split(".")[1]
        claims = json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))
        return int(claims["n"])
    except (IndexError, ValueError, KeyError):
        return None


class Clock:
    """A settable wall clock for the auth and the fake server."""

    def __init__(self, now: float = 1_800_000_000.0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds
