"""One HTTP attempt of a delivery, over httpx, bounded in time.

Only a 2xx answer counts as delivered. keyfob never follows a redirect (a 3xx is a
failed attempt: an endpoint cannot bounce keyfob to an address its administrator did
not register) and reads only the status line and headers of the answer, never its body,
so a receiver cannot make the worker hold a large answer in memory.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from typing import Final

import httpx

__all__ = ["AttemptResult", "new_client", "send"]

#: The most of an error message kept in the delivery log.
MAX_ERROR: Final = 300


@dataclass(frozen=True, slots=True)
class AttemptResult:
    status_code: int | None
    error: str

    @property
    def delivered(self) -> bool:
        return self.status_code is not None and 200 <= self.status_code < 300


def new_client(*, max_connections: int, user_agent: str) -> httpx.AsyncClient:
    """The worker's client: no redirects, a connection pool as large as the worker's
    concurrency. Each attempt bounds its own total time (:func:`send`)."""
    return httpx.AsyncClient(
        follow_redirects=False,
        limits=httpx.Limits(max_connections=max_connections, max_keepalive_connections=4),
        headers={"user-agent": user_agent},
    )


async def send(
    client: httpx.AsyncClient,
    url: str,
    *,
    headers: dict[str, str],
    payload: str,
    timeout: float,  # noqa: ASYNC109 - one bound for the whole attempt, see below
) -> AttemptResult:
    """POST ``payload`` to ``url``: the answer's status, or why there was none.

    ``timeout`` bounds the whole attempt, connecting included (httpx's own timeouts are
    per phase: a receiver that trickles bytes would never trip them).
    """
    try:
        async with asyncio.timeout(timeout):
            request = client.build_request(
                "POST",
                url,
                content=payload.encode(),
                headers=headers,
                timeout=httpx.Timeout(timeout),
            )
            response = await client.send(request, stream=True)
            await response.aclose()
    except TimeoutError:
        return AttemptResult(None, f"no answer within {timeout:g} s")
    except httpx.HTTPError as exc:
        return AttemptResult(None, _short(f"{type(exc).__name__}: {exc}"))
    code = response.status_code
    return AttemptResult(code, "" if 200 <= code < 300 else f"HTTP {code}")


def _short(text: str) -> str:
    return text if len(text) <= MAX_ERROR else text[: MAX_ERROR - 1] + "…"
