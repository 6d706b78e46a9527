"""Registering a webhook endpoint: which URLs are accepted, and its sealed secret.

Who can make keyfob call a URL (SSRF). Only an administrator, through ``keyfob webhooks
add`` with access to the store and the deployment secret; no HTTP route registers or
changes an endpoint, so nobody on the network can point keyfob at an address of their
choosing. The URL must be ``http`` or ``https`` with a host, and carry no user name or
password (they would sit in the store in clear and show in ``keyfob webhooks list``).
Private and loopback addresses are allowed on purpose: an internal alerting service is
the usual receiver. What keyfob does on sending limits the rest (:mod:`.sender`): it
never follows a redirect, never reads more than the status line and headers of an
answer, and bounds every attempt in time.
"""

from __future__ import annotations

import secrets
from collections.abc import Sequence
from typing import Final
from urllib.parse import urlsplit

from ..store.protocol import WebhookStore
from ..store.webhook_records import WebhookEndpoint
from .messages import DEFAULT_EVENT_TYPES, check_event_types
from .sealing import new_secret, seal, secret_text

__all__ = ["MAX_URL_LENGTH", "add_endpoint", "check_url"]

MAX_URL_LENGTH: Final = 2048


def check_url(url: str) -> str:
    """``url`` if keyfob may send webhooks to it, else ValueError saying why."""
    if len(url) > MAX_URL_LENGTH:
        raise ValueError(f"the URL is longer than {MAX_URL_LENGTH} characters")
    if any(not c.isprintable() or c.isspace() for c in url):
        raise ValueError("the URL contains spaces or control characters")
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError as exc:
        raise ValueError(f"not a valid URL: {exc}") from None
    del port  # read only so that a bad port is refused here, not at the first send
    if parts.scheme not in ("http", "https"):
        raise ValueError("webhook URLs must be http:// or https://")
    if not parts.hostname:
        raise ValueError("the URL has no host")
    if parts.username is not None or parts.password is not None:
        raise ValueError("the URL must not carry a user name or password")
    if parts.fragment:
        raise ValueError("the URL must not have a #fragment")
    return url


async def add_endpoint(
    store: WebhookStore,
    url: str,
    *,
    keys: Sequence[bytes],
    now: float,
    event_types: Sequence[str] = (),
    description: str = "",
) -> tuple[WebhookEndpoint, str]:
    """Register an endpoint; return it and its ``whsec_`` secret, which is not kept in clear
    and cannot be shown again. ``keys`` are the sealing keys, newest first."""
    check_url(url)
    types = check_event_types(tuple(event_types) or DEFAULT_EVENT_TYPES)
    endpoint_id = "ep_" + secrets.token_urlsafe(12)
    secret = new_secret()
    endpoint = WebhookEndpoint(
        id=endpoint_id,
        url=url,
        secret_sealed=seal(keys[0], endpoint_id, secret),
        event_types=types,
        created_at=now,
        description=description,
    )
    await store.add_webhook_endpoint(endpoint)
    return endpoint, secret_text(secret)
