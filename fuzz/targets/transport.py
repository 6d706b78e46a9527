"""The refresh-token transport rules (transports/refresh.py): which refresh cookies a
request presents, and the cookie a login sets, from the request's headers.

Contract: :meth:`RefreshTransport.presented_cookies` answers ``(None, ())`` or a
policy and a non-empty tuple of cookie values, or raises only
:class:`~keyfob.exceptions.InvalidRequest` (its subclass
:class:`~keyfob.exceptions.CSRFRejected` included). It presents cookies only with
``X-Keyfob-CSRF: 1``, no cross-site ``Sec-Fetch-Site``, an allowed or same ``Origin``
(if any), and no refresh token in the body too. :meth:`login_cookie_policy` raises only
``InvalidRequest`` subclasses and never sets a cookie for a foreign ``Origin``.
"""

from __future__ import annotations

from keyfob.exceptions import CSRFRejected, InsecureCookieTransport, InvalidRequest
from keyfob.transports.csrf import origin_allowed, request_origin
from keyfob.transports.refresh import RefreshTransport

from ..data import Reader, Writer

__all__ = ["check", "seeds"]

_TRANSPORTS = (
    RefreshTransport(allowed_origins=["https://app.example"]),
    RefreshTransport(allowed_origins=["http://localhost:3000"], cookie_mode="host"),
    RefreshTransport(allowed_origins=[], insecure_dev_cookies=True),
)
_SCHEMES = ("https", "http")
_HEADERS = ("host", "cookie", "origin", "x-keyfob-csrf", "sec-fetch-site")
_VALUES = {
    "host": ("app.example", "localhost:8000", "[::1]", "fuzzed"),
    "cookie": (
        "__Secure-keyfob_refresh=kfrt_x",
        "__Host-keyfob_refresh=kfrt_x",
        "keyfob_refresh=a; keyfob_refresh=b",
        "__Secure-keyfob_refresh=1; __Secure-keyfob_refresh=2",
        "fuzzed",
    ),
    "origin": ("https://app.example", "http://localhost:3000", "https://evil.example", "fuzzed"),
    "x-keyfob-csrf": ("1", "0", "fuzzed"),
    "sec-fetch-site": ("same-origin", "cross-site", "fuzzed"),
}


def check(data: bytes) -> None:
    r = Reader(data)
    transport = r.pick(_TRANSPORTS)
    scheme = r.pick(_SCHEMES)
    headers: dict[str, str] = {}
    for name in _HEADERS:
        if r.boolean():
            value = r.pick(_VALUES[name])
            headers[name] = r.text(120) if value == "fuzzed" else value
    body_token = r.text(100) if r.boolean() else None
    own = request_origin(scheme, headers.get("host", ""))
    origin = headers.get("origin")
    origin_ok = origin is None or origin_allowed(
        origin, allowed_origins=transport.allowed_origins, own_origin=own
    )

    try:
        policy, cookies = transport.presented_cookies(scheme, headers, body_token=body_token)
    except CSRFRejected:
        assert "cookie" in headers and body_token is None
    except InvalidRequest as exc:
        assert type(exc) is InvalidRequest and body_token is not None and "cookie" in headers
    else:
        if policy is None:
            assert cookies == ()
        else:
            assert cookies and all(isinstance(c, str) and ";" not in c for c in cookies)
            assert body_token is None, "a cookie and a body token at once is ambiguous"
            assert headers.get("x-keyfob-csrf", "").strip() == "1"
            assert headers.get("sec-fetch-site", "").strip().lower() != "cross-site"
            assert origin_ok, "a cookie request from a foreign Origin went through"
            assert transport.cookie_policy(scheme, headers) == policy

    try:
        login_policy = transport.login_cookie_policy(scheme, headers)
    except (CSRFRejected, InsecureCookieTransport):
        return
    assert origin_ok, "a login from a foreign Origin would set the cookie"
    assert login_policy == transport.cookie_policy(scheme, headers)


def seeds() -> list[bytes]:
    same_site = Writer().pick(_TRANSPORTS, _TRANSPORTS[0]).pick(_SCHEMES, "https")
    for name, value in (
        ("host", "app.example"),
        ("cookie", "__Secure-keyfob_refresh=kfrt_x"),
        ("origin", "https://app.example"),
        ("x-keyfob-csrf", "1"),
        ("sec-fetch-site", "same-origin"),
    ):
        same_site.boolean(True).pick(_VALUES[name], value)
    same_site.boolean(False)
    planted = Writer().pick(_TRANSPORTS, _TRANSPORTS[2]).pick(_SCHEMES, "http")
    planted.boolean(True).pick(_VALUES["host"], "fuzzed").text(120, "dev.example:8080")
    planted.boolean(True).pick(_VALUES["cookie"], "keyfob_refresh=a; keyfob_refresh=b")
    planted.boolean(False).boolean(True).pick(_VALUES["x-keyfob-csrf"], "1").boolean(False)
    planted.boolean(True).text(100, "kfrt_body")
    return [same_site.build(), planted.build()]
