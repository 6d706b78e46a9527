"""How credentials travel over HTTP, shared by every edge (server, integrations, client).

Pure functions over header strings: no web framework is imported here, so the ASGI
server, the framework integrations and the tests all make the same decisions.

- :mod:`~keyfob.transports.cookies` — the refresh-token cookie (spec §5, §8);
- :mod:`~keyfob.transports.bearer` — ``Authorization: Bearer`` and ``WWW-Authenticate``
  (RFC 6750);
- :mod:`~keyfob.transports.csrf` — the ``X-Keyfob-CSRF: 1`` and ``Origin`` checks;
- :mod:`~keyfob.transports.refresh` — :class:`RefreshTransport`, the one object that says
  how a refresh token travels (cookie or body, CSRF and Origin), built once per app;
- :mod:`~keyfob.transports.forwarded` — :class:`TrustedProxies`: the client's address from
  ``X-Forwarded-For``/``Forwarded``, believed only from the proxies a deployment names.

Their errors (``MissingCredentials``, ``CSRFRejected``, ``InsecureCookieTransport``)
are imported from :mod:`keyfob.exceptions`, like every other.
"""

from __future__ import annotations

from .bearer import TokenVerifier, bearer_token, verify_bearer, www_authenticate
from .cookies import (
    REFRESH_COOKIE_BASENAME,
    CookiePolicy,
    clear_refresh_cookie,
    is_local_host,
    read_refresh_cookie,
    refresh_cookie,
    refresh_cookie_max_age,
)
from .csrf import CSRF_HEADER, check_csrf, check_origin, normalize_origin, origin_allowed
from .forwarded import ForwardedClient, TrustedProxies
from .refresh import RefreshTransport

__all__ = [
    "CSRF_HEADER",
    "REFRESH_COOKIE_BASENAME",
    "CookiePolicy",
    "ForwardedClient",
    "RefreshTransport",
    "TokenVerifier",
    "TrustedProxies",
    "bearer_token",
    "check_csrf",
    "check_origin",
    "clear_refresh_cookie",
    "is_local_host",
    "normalize_origin",
    "origin_allowed",
    "read_refresh_cookie",
    "refresh_cookie",
    "refresh_cookie_max_age",
    "verify_bearer",
    "www_authenticate",
]
