"""The CSRF defence of cookie-authenticated requests (spec §5).

A request that authenticates with the refresh cookie must carry ``X-Keyfob-CSRF: 1``.
A cross-site page can only send a custom header after a CORS preflight, and keyfob
answers no preflight, so the header proves the request came from a same-origin script.
When the request also carries ``Origin``, it must be an allowed origin or the request's
own origin (same-origin requests are not cross-site by definition). ``Sec-Fetch-Site:
cross-site`` is refused too, for browsers that send it.
"""

from __future__ import annotations

import functools
import re
from collections.abc import Collection
from urllib.parse import urlsplit

from ..exceptions import CSRFRejected

__all__ = [
    "CSRF_HEADER",
    "check_csrf",
    "check_origin",
    "normalize_origin",
    "origin_allowed",
    "request_origin",
]

#: The header a cookie-authenticated request must carry, with the value ``1``.
CSRF_HEADER = "X-Keyfob-CSRF"

_DEFAULT_PORTS = {"http": 80, "https": 443}
# Browsers serialize an origin's host in ASCII (RFC 6454 §6.2, IDNA A-labels): a DNS
# name, or an IP literal. A host with any other character (a space, a control, a
# backslash, a percent-escape, raw Unicode) names no origin and is refused rather than
# compared; otherwise such a "normal form" was not even its own normal form (found by
# fuzzing: fuzz/regressions/csrf).
_HOST = re.compile(r"[a-z0-9_-]+(?:\.[a-z0-9_-]+)*\.?|[0-9a-f:.]*:[0-9a-f:.]*")


def normalize_origin(origin: str) -> str:
    """``scheme://host[:port]`` in lower case without a default port; ``""`` if not an origin."""
    try:
        parts = urlsplit(origin.strip())
        port = parts.port
    except ValueError:
        return ""
    scheme = parts.scheme.lower()
    host = (parts.hostname or "").lower()
    if scheme not in _DEFAULT_PORTS or not _HOST.fullmatch(host) or parts.path not in {"", "/"}:
        return ""
    if parts.query or parts.fragment or parts.username is not None:
        return ""
    if ":" in host:
        host = f"[{host}]"
    if port is None or port == _DEFAULT_PORTS[scheme]:
        return f"{scheme}://{host}"
    return f"{scheme}://{host}:{port}"


@functools.lru_cache(maxsize=256)
def request_origin(scheme: str, host: str) -> str:
    """The origin a request was addressed to, from its scheme and ``Host`` header.

    (Cached like :func:`~keyfob.transports.cookies.is_local_host`: a server sees few
    distinct ``Host`` values, and made-up ones only cycle the small cache.)
    """
    return normalize_origin(f"{scheme}://{host}")


def check_csrf(
    *,
    csrf_header: str | None,
    origin: str | None,
    sec_fetch_site: str | None,
    allowed_origins: Collection[str],
    own_origin: str,
) -> None:
    """Raise :class:`CSRFRejected` unless a cookie-authenticated request may go ahead.

    ``allowed_origins`` are normalized origins (:func:`normalize_origin`); ``own_origin``
    is the origin the request was addressed to (its scheme and ``Host``).
    """
    if csrf_header is None or csrf_header.strip() != "1":
        raise CSRFRejected(f"a cookie-authenticated request needs the header {CSRF_HEADER}: 1")
    if sec_fetch_site is not None and sec_fetch_site.strip().lower() == "cross-site":
        raise CSRFRejected("cross-site requests are refused")
    if origin is not None:
        check_origin(origin, allowed_origins=allowed_origins, own_origin=own_origin)


def check_origin(origin: str, *, allowed_origins: Collection[str], own_origin: str) -> None:
    """Raise :class:`CSRFRejected` unless an ``Origin`` header names an allowed origin
    or the request's own."""
    if not origin_allowed(origin, allowed_origins=allowed_origins, own_origin=own_origin):
        raise CSRFRejected("the request's Origin is not allowed")


def origin_allowed(origin: str, *, allowed_origins: Collection[str], own_origin: str) -> bool:
    """Whether an ``Origin`` header names an allowed origin or the request's own."""
    normalized = normalize_origin(origin)
    return bool(normalized) and (normalized in allowed_origins or normalized == own_origin)
