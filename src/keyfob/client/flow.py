"""The token requests as sans-I/O flows, and the two drivers that run them.

A flow is a generator that yields what to do next — an ``httpx.Request`` to send or a
:class:`Wait` — and receives an :class:`Answer` (or, thrown in, the
``httpx.TransportError`` the send raised). It returns the new :class:`TokenSet` or raises
a :mod:`.errors` error. The retry rules are therefore written once, and
:func:`run_sync` (threads: ``time.sleep``) and :func:`run_async` (asyncio) only carry
them out. This is httpx's own ``auth_flow`` shape, one level down.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import AsyncIterator, Callable, Generator, Iterator
from dataclasses import dataclass

import httpx

from .endpoints import KeyfobEndpoint, OAuthTokenEndpoint, TokenEndpoint
from .errors import (
    LoginFailed,
    SessionEnded,
    TokenEndpointError,
    TokenEndpointUnavailable,
)
from .retry import RETRYABLE_STATUSES, RetryPolicy, parse_retry_after
from .tokens import TokenSet, error_of_answer, token_set_from_answer

__all__ = [
    "Answer",
    "Flow",
    "Wait",
    "code_flow",
    "fetch_async",
    "fetch_sync",
    "login_flow",
    "refresh_flow",
    "run_async",
    "run_sync",
]

logger = logging.getLogger("keyfob.client")

#: A token answer is a few hundred bytes; a larger body is refused unread.
MAX_ANSWER_BYTES = 64 * 1024


@dataclass(frozen=True)
class Wait:
    """Sleep this many seconds, then resume the flow."""

    seconds: float


@dataclass(frozen=True)
class Answer:
    """The part of a token endpoint's response a flow reads."""

    status_code: int
    headers: httpx.Headers
    body: bytes


Flow = Generator[httpx.Request | Wait, Answer | None, TokenSet]


def refresh_flow(
    endpoint: TokenEndpoint, refresh_token: str, retry: RetryPolicy, clock: Callable[[], float]
) -> Flow:
    """Trade ``refresh_token`` for new tokens, retrying 429/5xx and network errors with the
    same token (see :mod:`.retry`); ``invalid_grant`` ends the session."""
    attempt = 0
    while True:
        attempt += 1
        retry_after: float | None = None
        try:
            answer = yield endpoint.refresh_request(refresh_token)
        except httpx.TransportError as exc:
            # The request may have rotated the token server-side: retry the same token.
            reason = f"{type(exc).__name__} from {endpoint.url}"
        else:
            assert answer is not None
            if answer.status_code == 200:
                return token_set_from_answer(
                    200, answer.body, now=clock(), previous_refresh_token=refresh_token
                )
            error, description = error_of_answer(answer.status_code, answer.body)
            if error == "invalid_grant":
                logger.warning("refresh refused (invalid_grant): the session has ended")
                raise SessionEnded(answer.status_code, error, description)
            if answer.status_code not in RETRYABLE_STATUSES:
                raise TokenEndpointError(answer.status_code, error, description)
            retry_after = parse_retry_after(answer.headers.get("retry-after"), now=clock())
            reason = f"{answer.status_code} {error}"
        wait = retry_after if retry_after is not None else retry.backoff_wait(attempt)
        if attempt == retry.attempts:
            raise TokenEndpointUnavailable(reason, attempts=attempt, retry_after=retry_after)
        if wait > retry.max_wait:
            raise TokenEndpointUnavailable(
                f"{reason}, asked to wait {wait:g} s (more than max_wait {retry.max_wait:g} s)",
                attempts=attempt,
                retry_after=retry_after,
            )
        logger.info(
            "refresh attempt %d of %d failed (%s); retrying in %.1f s",
            attempt,
            retry.attempts,
            reason,
            wait,
        )
        yield Wait(wait)


def login_flow(
    endpoint: KeyfobEndpoint, username: str, password: str, clock: Callable[[], float]
) -> Flow:
    """Log in once (``POST /auth/login`` with ``transport: "body"``). Not retried: each
    successful login makes a session, so a lost answer must not make two."""
    return _first_pair_flow(endpoint.login_request(username, password), clock)


def code_flow(
    endpoint: OAuthTokenEndpoint,
    code: str,
    *,
    redirect_uri: str,
    code_verifier: str,
    clock: Callable[[], float],
) -> Flow:
    """Trade an authorization code for the first pair. Not retried: a code is single-use,
    and a second presentation makes the server revoke what the first one got (RFC 6749
    §4.1.2), so a retry after a lost answer would end the very session it was after."""
    request = endpoint.code_request(code, redirect_uri=redirect_uri, code_verifier=code_verifier)
    return _first_pair_flow(request, clock)


def _first_pair_flow(request: httpx.Request, clock: Callable[[], float]) -> Flow:
    """One request that starts a session; ``invalid_grant`` is :class:`LoginFailed`."""
    try:
        answer = yield request
    except httpx.TransportError as exc:
        raise TokenEndpointUnavailable(type(exc).__name__, attempts=1) from exc
    assert answer is not None
    if answer.status_code == 200:
        return token_set_from_answer(200, answer.body, now=clock(), previous_refresh_token=None)
    error, description = error_of_answer(answer.status_code, answer.body)
    if error == "invalid_grant":
        raise LoginFailed(answer.status_code, error, description)
    if answer.status_code in RETRYABLE_STATUSES:
        retry_after = parse_retry_after(answer.headers.get("retry-after"), now=clock())
        raise TokenEndpointUnavailable(
            f"{answer.status_code} {error}", attempts=1, retry_after=retry_after
        )
    raise TokenEndpointError(answer.status_code, error, description)


def run_sync(flow: Flow, client: httpx.Client | None, request_timeout: float) -> TokenSet:
    """Carry out ``flow`` in this thread, with ``client`` or a client of its own."""
    with _sync_client(client, request_timeout) as http:
        step = next(flow)
        while True:
            try:
                if isinstance(step, Wait):
                    time.sleep(step.seconds)
                    step = flow.send(None)
                    continue
                try:
                    answer = _send_sync(http, step)
                except httpx.TransportError as exc:
                    step = flow.throw(exc)
                else:
                    step = flow.send(answer)
            except StopIteration as done:
                result: TokenSet = done.value
                return result


async def run_async(
    flow: Flow, client: httpx.AsyncClient | None, request_timeout: float
) -> TokenSet:
    """Carry out ``flow`` in the running event loop, with ``client`` or one of its own."""
    async with _async_client(client, request_timeout) as http:
        step = next(flow)
        while True:
            try:
                if isinstance(step, Wait):
                    await asyncio.sleep(step.seconds)
                    step = flow.send(None)
                    continue
                try:
                    answer = await _send_async(http, step)
                except httpx.TransportError as exc:
                    step = flow.throw(exc)
                else:
                    step = flow.send(answer)
            except StopIteration as done:
                result: TokenSet = done.value
                return result


def fetch_sync(request: httpx.Request, client: httpx.Client | None, timeout: float) -> Answer:
    """Send one request that is not a token request (metadata), with the same limits."""
    with _sync_client(client, timeout) as http:
        return _send_sync(http, request)


async def fetch_async(
    request: httpx.Request, client: httpx.AsyncClient | None, request_timeout: float
) -> Answer:
    """:func:`fetch_sync` in the running event loop."""
    async with _async_client(client, request_timeout) as http:
        return await _send_async(http, request)


# Refreshes are rare (once per access-token lifetime), so without a client of the
# caller's a fresh one per refresh costs nothing worth a pool, and is bound to no event
# loop: the same auth works under any loop.


@contextlib.contextmanager
def _sync_client(client: httpx.Client | None, timeout: float) -> Iterator[httpx.Client]:
    if client is not None:
        yield client
        return
    with httpx.Client(timeout=timeout) as own:
        yield own


@contextlib.asynccontextmanager
async def _async_client(
    client: httpx.AsyncClient | None, request_timeout: float
) -> AsyncIterator[httpx.AsyncClient]:
    if client is not None:
        yield client
        return
    async with httpx.AsyncClient(timeout=request_timeout) as own:
        yield own


# Redirects are never followed: a token request goes to the endpoint's URL and nowhere
# else, whatever the caller's client is configured to do. Nor does it take the client's
# own auth: the endpoint put the credentials it needs in the request, a client's other
# credentials have no business at the token endpoint, and a client holding this very
# KeyfobAuth would otherwise wait on its own refresh.


def _send_sync(http: httpx.Client, request: httpx.Request) -> Answer:
    response = http.send(request, stream=True, auth=None, follow_redirects=False)
    try:
        body = bytearray()
        for chunk in response.iter_bytes():
            body += chunk
            if len(body) > MAX_ANSWER_BYTES:
                raise _too_large(response.status_code)
        return Answer(response.status_code, response.headers, bytes(body))
    finally:
        response.close()


async def _send_async(http: httpx.AsyncClient, request: httpx.Request) -> Answer:
    response = await http.send(request, stream=True, auth=None, follow_redirects=False)
    try:
        body = bytearray()
        async for chunk in response.aiter_bytes():
            body += chunk
            if len(body) > MAX_ANSWER_BYTES:
                raise _too_large(response.status_code)
        return Answer(response.status_code, response.headers, bytes(body))
    finally:
        await response.aclose()


def _too_large(status_code: int) -> TokenEndpointError:
    return TokenEndpointError(
        status_code, "invalid_response", f"answer larger than {MAX_ANSWER_BYTES} bytes"
    )
