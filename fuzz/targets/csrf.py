"""The ``Origin`` header and the CSRF checks of cookie requests (transports/csrf.py).

Contract: :func:`normalize_origin` never raises and answers ``""`` or an origin in its
normal form, ``scheme://host[:port]`` in lower case, with no default port, path, query,
fragment or user info, which it maps to itself (a fixed point: two spellings of one
origin compare equal, and no spelling of a foreign origin equals an allowed one).
:func:`check_csrf` raises only :class:`~keyfob.exceptions.CSRFRejected`, and lets a
request through only with ``X-Keyfob-CSRF: 1``, without ``Sec-Fetch-Site: cross-site``
and with no ``Origin`` or an allowed (or its own) one.
"""

from __future__ import annotations

from urllib.parse import urlsplit

from keyfob.exceptions import CSRFRejected
from keyfob.transports.csrf import (
    check_csrf,
    normalize_origin,
    origin_allowed,
    request_origin,
)

from ..data import Reader, Writer

__all__ = ["check", "seeds"]

_ALLOWED = frozenset({"https://app.example", "http://localhost:3000"})
_ORIGINS = (
    "absent",
    "fuzzed",
    "https://app.example",
    "HTTPS://APP.EXAMPLE:443",
    "https://app.example/",
    "https://app.example.evil",
    "null",
    "http://[::1]:8000",
)
_CSRF = ("absent", "1", " 1 ", "0", "fuzzed")
_FETCH_SITE = ("absent", "same-origin", "cross-site", " Cross-Site ", "fuzzed")
_SCHEMES = ("http", "https")


def _header(r: Reader, options: tuple[str, ...]) -> str | None:
    choice = r.pick(options)
    if choice == "absent":
        return None
    return r.text(200) if choice == "fuzzed" else choice


def check(data: bytes) -> None:
    r = Reader(data)
    origin = _header(r, _ORIGINS)
    csrf = _header(r, _CSRF)
    fetch_site = _header(r, _FETCH_SITE)
    scheme = r.pick(_SCHEMES)
    host = r.text(64) if r.boolean() else "app.example"

    own = request_origin(scheme, host)
    _check_normal_form(own)
    if origin is not None:
        normalized = normalize_origin(origin)
        _check_normal_form(normalized)
        allowed = origin_allowed(origin, allowed_origins=_ALLOWED, own_origin=own)
        assert allowed == (bool(normalized) and (normalized in _ALLOWED or normalized == own))
    try:
        check_csrf(
            csrf_header=csrf,
            origin=origin,
            sec_fetch_site=fetch_site,
            allowed_origins=_ALLOWED,
            own_origin=own,
        )
    except CSRFRejected:
        return
    assert csrf is not None and csrf.strip() == "1"
    assert fetch_site is None or fetch_site.strip().lower() != "cross-site"
    assert origin is None or origin_allowed(origin, allowed_origins=_ALLOWED, own_origin=own)


def _check_normal_form(origin: str) -> None:
    assert isinstance(origin, str)
    if not origin:
        return
    assert normalize_origin(origin) == origin, f"{origin!r} is not a fixed point"
    assert origin == origin.lower()
    parts = urlsplit(origin)
    assert parts.scheme in {"http", "https"} and parts.hostname
    assert parts.path == "" and not parts.query and not parts.fragment
    assert parts.username is None and parts.password is None
    assert (parts.scheme, parts.port) not in {("http", 80), ("https", 443)}, "default port"


def seeds() -> list[bytes]:
    return [
        Writer()
        .pick(_ORIGINS, "https://app.example")
        .pick(_CSRF, "1")
        .pick(_FETCH_SITE, "same-origin")
        .pick(_SCHEMES, "https")
        .boolean(False)
        .build(),
        Writer()
        .pick(_ORIGINS, "fuzzed")
        .text(200, "https://user@App.Example:443/?q#f")
        .pick(_CSRF, "1")
        .pick(_FETCH_SITE, "absent")
        .pick(_SCHEMES, "http")
        .boolean(True)
        .text(64, "[::1]:8000")
        .build(),
        Writer()
        .pick(_ORIGINS, "fuzzed")
        .text(200, "http://[fe80::1%25eth0]:99999")
        .pick(_CSRF, "fuzzed")
        .text(200, "1\t")
        .pick(_FETCH_SITE, "fuzzed")
        .text(200, "cross-site")
        .pick(_SCHEMES, "https")
        .boolean(False)
        .build(),
    ]
