"""The pure transport rules (spec §5, RFC 6750) that every edge shares."""

from __future__ import annotations

from typing import Literal

import pytest

from keyfob import MalformedAccessToken, Settings
from keyfob.exceptions import (
    CSRFRejected,
    InsecureCookieTransport,
    InvalidRequest,
    KeyfobError,
    MissingCredentials,
)
from keyfob.transports.bearer import bearer_token, www_authenticate
from keyfob.transports.cookies import (
    CookiePolicy,
    clear_refresh_cookie,
    is_local_host,
    read_refresh_cookie,
    refresh_cookie,
    refresh_cookie_max_age,
)
from keyfob.transports.csrf import (
    check_csrf,
    check_origin,
    normalize_origin,
    origin_allowed,
    request_origin,
)
from keyfob.transports.refresh import RefreshTransport

SECURE = CookiePolicy(name="__Secure-keyfob_refresh", path="/auth", secure=True)


# cookies


@pytest.mark.parametrize(
    "host",
    [
        "localhost",
        "localhost:8000",
        "LOCALHOST.",
        "app.localhost:3000",
        "127.0.0.1",
        "127.8.9.10:80",
        "[::1]",
        "[::1]:8000",
        "::1",
    ],
)
def test_loopback_hosts_are_secure_contexts(host: str) -> None:
    """localhost, *.localhost, 127.0.0.0/8 and [::1] count as local, with or without a port."""
    assert is_local_host(host)


@pytest.mark.parametrize(
    "host",
    [
        "example.com",
        "localhost.example.com",
        "10.0.0.1",
        "[::2]",
        "",
        "[",
        "127.0.0.1.nip.io",
        "evil-localhost",
    ],
)
def test_other_hosts_are_not_local(host: str) -> None:
    """Any other host, however it looks, is not local."""
    assert not is_local_host(host)


def test_secure_path_mode_policy() -> None:
    """The default mode is a __Secure- cookie on /auth over HTTPS and on localhost."""
    for scheme, host in (("https", "auth.example.com"), ("http", "localhost:8000")):
        assert CookiePolicy.for_request("secure-path", scheme=scheme, host=host) == SECURE


def test_host_mode_policy() -> None:
    """The host mode is a __Host- cookie on /."""
    policy = CookiePolicy.for_request("host", scheme="https", host="auth.example.com")
    assert policy == CookiePolicy(name="__Host-keyfob_refresh", path="/", secure=True)


def test_plain_http_elsewhere_has_no_cookie_unless_insecure_dev() -> None:
    """Plain HTTP to another host gets no cookie, or an unprefixed insecure one when allowed."""
    assert CookiePolicy.for_request("secure-path", scheme="http", host="example.com") is None
    dev = CookiePolicy.for_request(
        "secure-path", scheme="http", host="example.com", insecure_dev_cookies=True
    )
    assert dev == CookiePolicy(name="keyfob_refresh", path="/auth", secure=False)


def test_set_cookie_strings() -> None:
    """Set-Cookie carries every attribute, and clearing repeats them with Max-Age=0."""
    assert refresh_cookie(SECURE, "kfrt_abc", max_age=60) == (
        "__Secure-keyfob_refresh=kfrt_abc; Max-Age=60; Path=/auth; HttpOnly; Secure; "
        "SameSite=Strict"
    )
    assert clear_refresh_cookie(SECURE) == (
        "__Secure-keyfob_refresh=; Max-Age=0; Path=/auth; HttpOnly; Secure; SameSite=Strict"
    )
    insecure = CookiePolicy(name="keyfob_refresh", path="/auth", secure=False)
    assert "Secure" not in refresh_cookie(insecure, "v", max_age=1)


def test_max_age_never_exceeds_the_absolute_deadline() -> None:
    """Max-Age rounds down and never goes negative."""
    assert refresh_cookie_max_age(1000.9, 0.0) == 1000
    assert refresh_cookie_max_age(100.0, 100.5) == 0


def test_reading_the_cookie_header() -> None:
    """Every value of our cookie is read, in order; other cookies are ignored."""
    header = 'a=1; __Secure-keyfob_refresh=kfrt_x ;b=2;__Secure-keyfob_refresh="kfrt_y"'
    assert read_refresh_cookie(SECURE, header) == ("kfrt_x", "kfrt_y")
    assert read_refresh_cookie(SECURE, None) == ()
    assert read_refresh_cookie(SECURE, "keyfob_refresh=z; ;;=") == ()


# bearer


def test_bearer_token_is_read() -> None:
    """The b64token after "Bearer" (any case, one or more spaces) is the token."""
    assert bearer_token(["Bearer abc.def-_~+/=="]) == "abc.def-_~+/=="
    assert bearer_token(["bearer   abc"]) == "abc"


@pytest.mark.parametrize("values", [[], ["Basic YWxhZGRpbjpvcGVuc2VzYW1l"], ["Token abc"], [""]])
def test_no_bearer_credentials(values: list[str]) -> None:
    """No header, or another scheme, is "no credentials" (a bare challenge)."""
    with pytest.raises(MissingCredentials):
        bearer_token(values)


@pytest.mark.parametrize(
    "values",
    [["Bearer"], ["Bearer a b"], ["Bearer é"], ["Bearer a", "Bearer b"], ["Bearer " + "a" * 9000]],
)
def test_malformed_bearer_credentials(values: list[str]) -> None:
    """A Bearer header without one well-formed token is a malformed token."""
    with pytest.raises(MalformedAccessToken):
        bearer_token(values)


def test_www_authenticate() -> None:
    """The challenge has no error without one, and quotes a sanitized description with one."""
    assert www_authenticate() == 'Bearer realm="keyfob"'
    assert www_authenticate(error="invalid_token", description='bad "token"\n') == (
        'Bearer realm="keyfob", error="invalid_token", error_description="bad ?token??"'
    )


# csrf


def test_origins_are_normalized() -> None:
    """Origins compare in lower case without default ports; non-origins normalize to ""."""
    assert normalize_origin("HTTPS://Example.COM:443") == "https://example.com"
    assert normalize_origin("http://localhost:8000/") == "http://localhost:8000"
    assert normalize_origin("http://[::1]:80") == "http://[::1]"
    for junk in ("null", "file:///etc", "https://a.com/path", "http://u@a.com", "http://a:b:c", ""):
        assert normalize_origin(junk) == ""


def test_origin_allowed() -> None:
    """An Origin passes when it is allowed or the request's own."""
    allowed = {"https://app.example.com"}
    own = "https://auth.example.com"
    assert origin_allowed("https://app.example.com", allowed_origins=allowed, own_origin=own)
    assert origin_allowed("https://auth.example.com:443", allowed_origins=allowed, own_origin=own)
    assert not origin_allowed("https://evil.example", allowed_origins=allowed, own_origin=own)
    assert not origin_allowed("null", allowed_origins=allowed, own_origin="")


def _check(**overrides: str | None) -> None:
    kwargs: dict[str, str | None] = {
        "csrf_header": "1",
        "origin": None,
        "sec_fetch_site": None,
    }
    kwargs.update(overrides)
    check_csrf(
        csrf_header=kwargs["csrf_header"],
        origin=kwargs["origin"],
        sec_fetch_site=kwargs["sec_fetch_site"],
        allowed_origins={"https://app.example.com"},
        own_origin="https://auth.example.com",
    )


def test_csrf_passes_with_the_header_and_a_good_or_no_origin() -> None:
    """The header alone passes; with an allowed or own Origin too; same-site fetches pass."""
    _check()
    _check(origin="https://app.example.com")
    _check(origin="https://auth.example.com", sec_fetch_site="same-origin")


@pytest.mark.parametrize(
    "overrides",
    [
        {"csrf_header": None},
        {"csrf_header": "true"},
        {"origin": "https://evil.example"},
        {"origin": "null"},
        {"sec_fetch_site": "cross-site"},
    ],
)
def test_csrf_refusals(overrides: dict[str, str | None]) -> None:
    """No header, a wrong value, a foreign or null Origin, or a cross-site fetch is refused."""
    with pytest.raises(CSRFRejected):
        _check(**overrides)


def test_check_origin() -> None:
    """check_origin passes an allowed or own Origin and refuses any other."""
    allowed = {"https://app.example.com"}
    check_origin("https://app.example.com", allowed_origins=allowed, own_origin="")
    with pytest.raises(CSRFRejected, match="Origin is not allowed"):
        check_origin("https://evil.example", allowed_origins=allowed, own_origin="")


def test_request_origin() -> None:
    """A request's own origin is its scheme and Host, normalized; a junk Host is no origin."""
    assert request_origin("https", "Auth.Example.com:443") == "https://auth.example.com"
    assert request_origin("http", "localhost:8000") == "http://localhost:8000"
    assert request_origin("https", "") == ""


def test_a_required_cookie_policy_refuses_plain_http_elsewhere() -> None:
    """Where no refresh cookie may travel, a client that asks for one is refused."""
    with pytest.raises(InsecureCookieTransport, match="HTTPS"):
        CookiePolicy.required_for_request("secure-path", scheme="http", host="example.com")
    assert (
        CookiePolicy.required_for_request("secure-path", scheme="https", host="example.com")
        == SECURE
    )


# the refresh-token transport

APP = "https://app.example.com"
TRANSPORT = RefreshTransport(allowed_origins=[APP, "null", "not an origin"])
#: The headers of a cookie refresh that passes every check.
COOKIE_REFRESH = {
    "host": "auth.example.com",
    "cookie": f"{SECURE.name}=kfrt_a",
    "x-keyfob-csrf": "1",
}


def test_allowed_origins_are_normalized_and_default_to_the_issuer() -> None:
    """Allowed origins are kept normalized, junk dropped; with none, the issuer's origin."""
    assert TRANSPORT.allowed_origins == {APP}
    settings = Settings(issuer="https://Auth.Example.com:443/")
    assert RefreshTransport.from_settings(settings).allowed_origins == {"https://auth.example.com"}
    configured = settings.replace(allowed_origins=("https://a.example", "https://b.example"))
    transport = RefreshTransport.from_settings(configured)
    assert transport.allowed_origins == {"https://a.example", "https://b.example"}


@pytest.mark.parametrize(
    ("mode", "insecure_dev_cookies", "scheme", "host", "name"),
    [
        ("secure-path", False, "https", "auth.example.com", "__Secure-keyfob_refresh"),
        ("secure-path", False, "http", "localhost:8000", "__Secure-keyfob_refresh"),
        ("host", False, "https", "auth.example.com", "__Host-keyfob_refresh"),
        ("secure-path", False, "http", "auth.example.com", None),
        ("secure-path", True, "http", "auth.example.com", "keyfob_refresh"),
        ("host", True, "http", "auth.example.com", "keyfob_refresh"),
        ("secure-path", True, "https", "auth.example.com", "__Secure-keyfob_refresh"),
    ],
)
def test_the_cookie_policy_follows_scheme_and_host(
    mode: Literal["secure-path", "host"],
    insecure_dev_cookies: bool,
    scheme: str,
    host: str,
    name: str | None,
) -> None:
    """The cookie of a request depends on the mode, the scheme, the Host and the switch."""
    transport = RefreshTransport(
        allowed_origins=(), cookie_mode=mode, insecure_dev_cookies=insecure_dev_cookies
    )
    policy = transport.cookie_policy(scheme, {"host": host})
    assert (policy and policy.name) == name


@pytest.mark.parametrize(
    ("scheme", "headers", "outcome"),
    [
        ("https", {"host": "auth.example.com"}, SECURE),
        ("https", {"host": "auth.example.com", "origin": APP}, SECURE),
        ("https", {"host": "auth.example.com", "origin": "https://auth.example.com"}, SECURE),
        ("https", {"host": "auth.example.com", "origin": "https://evil.example"}, CSRFRejected),
        ("https", {"host": "auth.example.com", "origin": "null"}, CSRFRejected),
        ("http", {"host": "auth.example.com"}, InsecureCookieTransport),
        ("http", {"host": "auth.example.com", "origin": APP}, InsecureCookieTransport),
    ],
)
def test_a_cookie_login(
    scheme: str, headers: dict[str, str], outcome: CookiePolicy | type[KeyfobError]
) -> None:
    """A cookie login gets the request's cookie, unless no cookie may travel there or
    its Origin is foreign."""
    if isinstance(outcome, CookiePolicy):
        assert TRANSPORT.login_cookie_policy(scheme, headers) == outcome
    else:
        with pytest.raises(outcome):
            TRANSPORT.login_cookie_policy(scheme, headers)


@pytest.mark.parametrize(
    ("scheme", "headers", "body_token", "outcome"),
    [
        # no refresh cookie: the body's token (or nothing) is the credential
        ("https", {"host": "auth.example.com"}, "kfrt_b", ()),
        ("https", {"host": "auth.example.com"}, None, ()),
        ("https", {"host": "auth.example.com", "cookie": "other=1"}, "kfrt_b", ()),
        ("http", {**COOKIE_REFRESH, "cookie": "keyfob_refresh=kfrt_a"}, None, ()),
        # the cookie, after the CSRF checks
        ("https", COOKIE_REFRESH, None, ("kfrt_a",)),
        ("http", {**COOKIE_REFRESH, "host": "localhost:8000"}, None, ("kfrt_a",)),
        ("https", {**COOKIE_REFRESH, "origin": APP}, None, ("kfrt_a",)),
        ("https", {**COOKIE_REFRESH, "origin": "https://auth.example.com"}, None, ("kfrt_a",)),
        ("https", {**COOKIE_REFRESH, "sec-fetch-site": "same-origin"}, None, ("kfrt_a",)),
        (
            "https",
            {**COOKIE_REFRESH, "cookie": f"{SECURE.name}=kfrt_x; {SECURE.name}=kfrt_y"},
            None,
            ("kfrt_x", "kfrt_y"),
        ),
        ("https", {"host": "auth.example.com", "cookie": f"{SECURE.name}=v"}, None, CSRFRejected),
        ("https", {**COOKIE_REFRESH, "x-keyfob-csrf": "true"}, None, CSRFRejected),
        ("https", {**COOKIE_REFRESH, "origin": "https://evil.example"}, None, CSRFRejected),
        ("https", {**COOKIE_REFRESH, "sec-fetch-site": "cross-site"}, None, CSRFRejected),
        # the cookie and the body at once: ambiguous, whatever else the request says
        ("https", COOKIE_REFRESH, "kfrt_b", InvalidRequest),
        ("https", {"host": "auth.example.com", "cookie": f"{SECURE.name}=v"}, "b", InvalidRequest),
    ],
)
def test_the_refresh_token_a_request_presents(
    scheme: str,
    headers: dict[str, str],
    body_token: str | None,
    outcome: tuple[str, ...] | type[KeyfobError],
) -> None:
    """The refresh cookies a request presents, if it may present any: never beside a
    body token, and only with the CSRF checks passed."""
    if isinstance(outcome, tuple):
        policy, cookies = TRANSPORT.presented_cookies(scheme, headers, body_token=body_token)
        assert cookies == outcome
        assert (policy is None) == (not outcome)
    else:
        with pytest.raises(outcome) as raised:
            TRANSPORT.presented_cookies(scheme, headers, body_token=body_token)
        assert type(raised.value) is outcome


def test_the_cookie_is_set_for_the_rest_of_the_session_and_cleared() -> None:
    """set_cookie lives until the session's absolute deadline; clear_cookie deletes it."""
    value = TRANSPORT.set_cookie(SECURE, "kfrt_n", absolute_expires_at=1060.5, now=1000.0)
    assert value == refresh_cookie(SECURE, "kfrt_n", max_age=60)
    assert TRANSPORT.clear_cookie(SECURE) == clear_refresh_cookie(SECURE)
