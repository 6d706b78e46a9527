"""The refresh cookie (transports/cookies.py): reading ``Cookie`` headers, the cookie
policy of a request's scheme and ``Host``, and the ``Set-Cookie`` values keyfob writes.

Contract: nothing here raises on any header text except
:meth:`CookiePolicy.required_for_request`, which raises only
:class:`~keyfob.exceptions.InsecureCookieTransport`, and exactly where
:meth:`CookiePolicy.for_request` answers ``None``. Every value read back is a piece of
the header with no ``;`` in it, one per pair named exactly like the cookie; a cookie
keyfob set reads back as the token it stores, whatever other cookies surround it.
"""

from __future__ import annotations

from keyfob.exceptions import InsecureCookieTransport
from keyfob.settings.model import CookieMode
from keyfob.transports.cookies import (
    REFRESH_COOKIE_BASENAME,
    CookiePolicy,
    clear_refresh_cookie,
    is_local_host,
    read_refresh_cookie,
    refresh_cookie,
)

from ..data import Reader, Writer

__all__ = ["check", "seeds"]

_MODES: tuple[CookieMode, ...] = ("secure-path", "host")
_SCHEMES = ("http", "https", "HTTPS", "ws", "wss", "")
_HOSTS = ("localhost", "127.0.0.1:8000", "[::1]:443", "auth.example", "app.localhost.", "fuzzed")
_NAMES = (
    "__Secure-keyfob_refresh",
    "__Host-keyfob_refresh",
    "keyfob_refresh",
    " __Secure-keyfob_refresh ",
    "other",
)
_TOKEN = "kfrt_" + "A" * 93


def check(data: bytes) -> None:
    r = Reader(data)
    mode = r.pick(_MODES)
    scheme = r.pick(_SCHEMES)
    host = r.pick(_HOSTS)
    if host == "fuzzed":
        host = r.text(64)
    insecure = r.boolean()
    local = is_local_host(host)
    assert isinstance(local, bool)

    policy = CookiePolicy.for_request(mode, scheme=scheme, host=host, insecure_dev_cookies=insecure)
    try:
        required = CookiePolicy.required_for_request(
            mode, scheme=scheme, host=host, insecure_dev_cookies=insecure
        )
    except InsecureCookieTransport:
        assert policy is None
        return
    assert required == policy and policy is not None
    secure_origin = scheme.lower() in {"https", "wss"} or local
    assert policy.secure == secure_origin, "Secure exactly on HTTPS and loopback"
    assert policy.name.endswith(REFRESH_COOKIE_BASENAME)
    assert policy.name.startswith(("__Host-", "__Secure-")) == policy.secure

    # A Cookie header: fuzzed pairs around (maybe) the cookie keyfob set.
    pairs = []
    for _ in range(r.integer(0, 4)):
        pairs.append(f"{r.pick(_NAMES)}={r.text(24)}")
    ours = r.boolean()
    if ours:
        pairs.insert(r.integer(0, len(pairs)), refresh_cookie(policy, _TOKEN, max_age=60))
    separator = r.pick(("; ", ";", " ; "))
    header = separator.join(pairs) + r.text(16)
    values = read_refresh_cookie(policy, header)
    assert isinstance(values, tuple)
    assert len(values) <= header.count(";") + 1
    for value in values:
        assert isinstance(value, str) and ";" not in value and value in header
    if ours:
        assert _TOKEN in values, "the cookie keyfob set must read back"
    set_cookie = refresh_cookie(policy, _TOKEN, max_age=60)
    assert read_refresh_cookie(policy, set_cookie.partition(";")[0]) == (_TOKEN,)
    assert clear_refresh_cookie(policy).startswith(f"{policy.name}=; Max-Age=0;")


def seeds() -> list[bytes]:
    return [
        Writer()
        .pick(_MODES, "secure-path")
        .pick(_SCHEMES, "https")
        .pick(_HOSTS, "auth.example")
        .boolean(False)
        .integer(0, 4, 1)
        .pick(_NAMES, "other")
        .text(24, "x")
        .boolean(True)
        .integer(0, 1, 1)
        .pick(("; ", ";", " ; "), "; ")
        .text(16, "")
        .build(),
        Writer()
        .pick(_MODES, "host")
        .pick(_SCHEMES, "http")
        .pick(_HOSTS, "fuzzed")
        .text(64, "[::ffff:127.0.0.1]:80")
        .boolean(False)
        .integer(0, 4, 2)
        .pick(_NAMES, "__Host-keyfob_refresh")
        .text(24, '"quoted"')
        .pick(_NAMES, " __Secure-keyfob_refresh ")
        .text(24, "a=b")
        .boolean(False)
        .build(),
    ]
