"""The authorization-code flow with PKCE from start to first token pair, for programs a
person runs (RFC 8252: a command-line tool or a desktop app).

Metadata → a loopback listener (:mod:`.loopback`) → the person signs in in their own
browser → the redirect is checked (:mod:`.authorization`) → the code is exchanged once
(:func:`.flow.code_flow`). :class:`~keyfob.client.KeyfobAuth` calls these; they return
the endpoint and the tokens it starts from.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable

import httpx

from .authorization import AuthorizationRequest, ServerMetadata, discover_request, server_metadata
from .endpoints import OAuthTokenEndpoint
from .errors import AuthorizationFailed
from .flow import Answer, code_flow, fetch_async, fetch_sync, run_async, run_sync
from .loopback import LoopbackRedirect
from .tokens import TokenSet

__all__ = ["BrowserOpener", "authorize_async", "authorize_sync"]

logger = logging.getLogger("keyfob.client")

#: Shows the person the authorization URL: ``webbrowser.open`` by default. A falsy
#: result means no browser could be opened; the URL is then logged for the person to open.
BrowserOpener = Callable[[str], object]


def authorize_sync(
    issuer: str,
    client_id: str,
    *,
    client_secret: str | None,
    scope: str,
    open_browser: BrowserOpener,
    wait: float,
    redirect_path: str,
    client: httpx.Client | None,
    timeout: float,
    clock: Callable[[], float],
) -> tuple[OAuthTokenEndpoint, TokenSet]:
    metadata = _metadata(issuer, _fetch_or_fail(lambda r: fetch_sync(r, client, timeout), issuer))
    endpoint = OAuthTokenEndpoint(metadata.token_endpoint, client_id, client_secret)
    with LoopbackRedirect(redirect_path) as redirect:
        request = AuthorizationRequest(metadata, client_id, redirect.redirect_uri, scope)
        _show(open_browser, request.url)
        code = request.code_from_redirect(redirect.wait(wait))
    flow = code_flow(
        endpoint,
        code,
        redirect_uri=request.redirect_uri,
        code_verifier=request.code_verifier,
        clock=clock,
    )
    return endpoint, run_sync(flow, client, timeout)


async def authorize_async(
    issuer: str,
    client_id: str,
    *,
    client_secret: str | None,
    scope: str,
    open_browser: BrowserOpener,
    wait: float,
    redirect_path: str,
    client: httpx.AsyncClient | None,
    request_timeout: float,
    clock: Callable[[], float],
) -> tuple[OAuthTokenEndpoint, TokenSet]:
    try:
        answer = await fetch_async(
            httpx.Request("GET", discover_request(issuer)), client, request_timeout
        )
    except httpx.TransportError as exc:
        raise _unreachable(issuer, exc) from exc
    metadata = _metadata(issuer, answer)
    endpoint = OAuthTokenEndpoint(metadata.token_endpoint, client_id, client_secret)
    with LoopbackRedirect(redirect_path) as redirect:
        request = AuthorizationRequest(metadata, client_id, redirect.redirect_uri, scope)
        _show(open_browser, request.url)
        # The listener is a thread; waiting for it must not hold up the event loop.
        query = await asyncio.to_thread(redirect.wait, wait)
        code = request.code_from_redirect(query)
    flow = code_flow(
        endpoint,
        code,
        redirect_uri=request.redirect_uri,
        code_verifier=request.code_verifier,
        clock=clock,
    )
    return endpoint, await run_async(flow, client, request_timeout)


def _fetch_or_fail(fetch: Callable[[httpx.Request], Answer], issuer: str) -> Answer:
    try:
        return fetch(httpx.Request("GET", discover_request(issuer)))
    except httpx.TransportError as exc:
        raise _unreachable(issuer, exc) from exc


def _metadata(issuer: str, answer: Answer) -> ServerMetadata:
    return server_metadata(issuer, answer.status_code, answer.body)


def _unreachable(issuer: str, exc: httpx.TransportError) -> AuthorizationFailed:
    return AuthorizationFailed("invalid_metadata", f"{type(exc).__name__} from {issuer}")


def _show(open_browser: BrowserOpener, url: str) -> None:
    if not open_browser(url):
        logger.warning("no browser could be opened; open this address to sign in: %s", url)
