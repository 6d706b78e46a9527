"""Responses and the headers each kind of answer carries.

- :func:`json_response`: public, cacheable documents (JWKS, metadata) set their own
  ``Cache-Control``;
- :func:`private_response`: anything that carries a user's data or sets or clears a
  cookie: ``Cache-Control: no-store`` and ``Pragma: no-cache``, so no browser or shared
  cache keeps it (:func:`token_response` and :func:`no_content` are two of these);
- :data:`HTML_SECURITY_HEADERS`: every HTML page keyfob serves (the demo page today,
  login and consent pages later) sends them: a strict Content-Security-Policy (scripts,
  styles and images from keyfob's own origin only, no inline code, no framing, forms
  post only back to keyfob), ``X-Frame-Options`` for browsers without CSP level 2,
  ``nosniff`` and no ``Referer``. :func:`html_headers` adds them to a page's own.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from typing import Final

from starlette.responses import Response

from ..oauth.errors import NO_STORE_HEADERS

__all__ = [
    "CONTENT_SECURITY_POLICY",
    "HTML_SECURITY_HEADERS",
    "JSON_MEDIA_TYPE",
    "NO_STORE_HEADERS",
    "html_headers",
    "json_response",
    "no_content",
    "private_response",
    "token_response",
]

JSON_MEDIA_TYPE = "application/json"
# Built once: json.dumps with any option builds a new encoder on every call.
_ENCODER = json.JSONEncoder(ensure_ascii=False, allow_nan=False, separators=(",", ":"))

#: The policy of every HTML page: nothing but what keyfob serves itself, no inline
#: script or style (an injected tag does nothing), never inside a frame (clickjacking),
#: forms post back to keyfob only, and no <base> to re-point relative URLs.
CONTENT_SECURITY_POLICY: Final = (
    "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self'; "
    "connect-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'"
)
HTML_SECURITY_HEADERS: Final[Mapping[str, str]] = {
    "Content-Security-Policy": CONTENT_SECURITY_POLICY,
    "X-Frame-Options": "DENY",
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
}


def html_headers(
    headers: Mapping[str, str] | None = None, *, form_action: Sequence[str] = ()
) -> dict[str, str]:
    """The headers of an HTML page: :data:`HTML_SECURITY_HEADERS` and ``headers``
    (which may not loosen them: the security headers are applied last).

    ``form_action`` are CSP source expressions a form of the page may lead to besides
    keyfob itself: browsers apply ``form-action`` to the redirect that answers a form
    too, so the authorization page names its client's redirect URI here.
    """
    out = {**(headers or {}), **HTML_SECURITY_HEADERS}
    if form_action:
        out["Content-Security-Policy"] = CONTENT_SECURITY_POLICY.replace(
            "form-action 'self'", " ".join(("form-action 'self'", *form_action))
        )
    return out


def json_response(
    data: object, status: int = 200, headers: Mapping[str, str] | None = None
) -> Response:
    body = _ENCODER.encode(data)
    return Response(body.encode(), status, headers, media_type=JSON_MEDIA_TYPE)


# Pre-encoded: a protected route's answer appends them instead of having Starlette
# lower-case and encode two more headers per answer (measured: ~8 µs of a ~110 µs /auth/me).
_NO_STORE_RAW: Final = tuple(
    (name.lower().encode("latin-1"), value.encode("latin-1"))
    for name, value in NO_STORE_HEADERS.items()
)
_NO_STORE_NAMES: Final = frozenset(name.lower() for name in NO_STORE_HEADERS)


def private_response(
    data: object, status: int = 200, headers: Mapping[str, str] | None = None
) -> Response:
    """A JSON answer with a user's data or a cookie in it: never stored by any cache."""
    if headers and any(name.lower() in _NO_STORE_NAMES for name in headers):
        return json_response(data, status, {**NO_STORE_HEADERS, **headers})
    response = json_response(data, status, headers)
    response.raw_headers.extend(_NO_STORE_RAW)
    return response


def token_response(data: object, headers: Mapping[str, str] | None = None) -> Response:
    """A successful token response: never cached (RFC 6749 §5.1)."""
    return private_response(data, 200, headers)


def no_content(headers: Mapping[str, str] | None = None) -> Response:
    return Response(None, 204, {**NO_STORE_HEADERS, **(headers or {})})
