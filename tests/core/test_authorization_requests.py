"""Authorization requests as pure decisions (keyfob.core.authorization_requests), as
tables: which requests go ahead, which are refused to the user, which go back to the
client with which error."""

from __future__ import annotations

from urllib.parse import parse_qs, urlencode, urlsplit

import pytest

from keyfob.core.authorization_requests import (
    MAX_PARAMETERS,
    MAX_QUERY_BYTES,
    AuthorizationRequest,
    Refusal,
    parse_parameters,
    redirect_source,
    redirect_with,
    requested_client_id,
    validate_request,
)
from keyfob.core.clients import Client, new_client

CHALLENGE = "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM"  # RFC 7636 Appendix B
REDIRECT = "https://app.example/cb"


def make_client(
    *,
    auth_method: str = "none",
    require_pkce: bool = True,
    grant_types: tuple[str, ...] = ("authorization_code", "refresh_token"),
    scopes: tuple[str, ...] = ("openid", "profile", "read"),
    redirect_uris: tuple[str, ...] = (REDIRECT, "http://127.0.0.1/native", "com.example.app:/cb"),
) -> Client:
    return new_client(
        client_id="app",
        name="The App",
        auth_method=auth_method,  # type: ignore[arg-type]
        redirect_uris=redirect_uris,
        grant_types=grant_types,
        scopes=scopes,
        created_at=0.0,
        secret="s3cret" if auth_method.startswith("client_secret") else None,
        require_pkce=require_pkce,
    )


PUBLIC = make_client()
CONFIDENTIAL_NO_PKCE = make_client(auth_method="client_secret_basic", require_pkce=False)
CONFIDENTIAL_PKCE = make_client(auth_method="client_secret_basic")
REFRESH_ONLY = make_client(grant_types=("refresh_token",))

GOOD = {
    "response_type": "code",
    "client_id": "app",
    "redirect_uri": REDIRECT,
    "scope": "openid read",
    "state": "xyz",
    "code_challenge": CHALLENGE,
    "code_challenge_method": "S256",
}


def params(pairs: dict[str, str] | list[tuple[str, str]]) -> dict[str, tuple[str, ...]]:
    parsed = parse_parameters(urlencode(pairs).encode())
    assert not isinstance(parsed, Refusal)
    return dict(parsed)


def with_(**changes: str | None) -> dict[str, str]:
    out = {**GOOD, **changes}
    return {k: v for k, v in out.items() if v is not None}


def test_a_good_request_is_accepted_with_everything_it_binds() -> None:
    result = validate_request(params(with_(nonce="n-0S6")), PUBLIC)
    assert result == AuthorizationRequest(
        client_id="app",
        redirect_uri=REDIRECT,
        scopes=("openid", "read"),
        state="xyz",
        code_challenge=CHALLENGE,
        nonce="n-0S6",
    )
    assert isinstance(result, AuthorizationRequest)
    assert result.scope == "openid read"


@pytest.mark.parametrize(
    ("query", "why"),
    [
        (b"a=1&" * (MAX_QUERY_BYTES // 4 + 1), "the request is too long"),
        (b"client_id=%ff", "the request is malformed"),
        (b"&".join(b"p%d=1" % i for i in range(MAX_PARAMETERS + 1)), "the request is malformed"),
    ],
)
def test_unreadable_queries_are_refused_to_the_user(query: bytes, why: str) -> None:
    assert parse_parameters(query) == Refusal("invalid_request", why)


@pytest.mark.parametrize(
    ("pairs", "why"),
    [
        ([], "client_id is missing"),
        ([("client_id", "")], "client_id is missing"),
        ([("client_id", "app"), ("client_id", "app")], "client_id is repeated"),
        ([("client_id", "a" * 129)], "client_id is too long (at most 128 characters)"),
    ],
)
def test_client_id_problems_are_never_redirected(pairs: list[tuple[str, str]], why: str) -> None:
    assert requested_client_id(params(pairs)) == Refusal("invalid_request", why)


def test_the_client_id_is_read() -> None:
    assert requested_client_id(params(GOOD)) == "app"


@pytest.mark.parametrize(
    "redirect_uri",
    [
        "https://app.example/cb/",  # trailing slash
        "https://app.example/cb/../evil",  # path traversal
        "https://app.example/cb%2F..%2Fevil",
        "https://app.example/cbx",  # prefix of the registered one
        "https://app.example/c",  # the registered one is its prefix
        "https://app.example/cb?x=1",  # added query
        "https://app.example/cb#frag",  # fragment
        "https://evil@app.example/cb",  # userinfo
        "https://app.example@evil.example/cb",  # userinfo: the host is evil.example
        "https://app.example.evil.example/cb",  # suffix domain
        "https://evil.example/?https://app.example/cb",  # open redirect through a query
        "//evil.example/cb",  # scheme-relative
        "HTTPS://APP.EXAMPLE/cb",  # case: compared as strings
        "http://app.example/cb",  # scheme downgrade
        "https://app.example:443/cb",  # explicit default port
        "http://127.0.0.1:8080/native/../x",  # loopback, traversal after the port
        "http://127.0.0.1:99999/native",  # loopback, impossible port
        "http://localhost:8080/native",  # loopback by name is not the registered IP
        "com.example.app:/cb/x",
        "javascript:alert(1)",
    ],
)
def test_unregistered_redirect_uris_are_refused_to_the_user(redirect_uri: str) -> None:
    result = validate_request(params(with_(redirect_uri=redirect_uri)), PUBLIC)
    assert result == Refusal(
        "invalid_request", "the redirect_uri is not registered for this client"
    )


@pytest.mark.parametrize(
    ("pairs", "why"),
    [
        (with_(redirect_uri=None), "redirect_uri is missing"),
        ([*with_().items(), ("redirect_uri", REDIRECT)], "redirect_uri is repeated"),
        (
            with_(redirect_uri=REDIRECT + "?" + "x" * 2048),
            "redirect_uri is too long (at most 2048 characters)",
        ),
    ],
)
def test_redirect_uri_problems_are_never_redirected(
    pairs: dict[str, str] | list[tuple[str, str]], why: str
) -> None:
    assert validate_request(params(pairs), PUBLIC) == Refusal("invalid_request", why)


def test_a_loopback_redirect_matches_any_port_and_is_bound_with_it() -> None:
    result = validate_request(params(with_(redirect_uri="http://127.0.0.1:51004/native")), PUBLIC)
    assert isinstance(result, AuthorizationRequest)
    assert result.redirect_uri == "http://127.0.0.1:51004/native"


# Refusals that go back to the client, with the state it sent.
REDIRECTED = [
    (with_(response_type=None), PUBLIC, "invalid_request", "response_type is missing"),
    (
        with_(response_type="token"),
        PUBLIC,
        "unsupported_response_type",
        "only response_type=code is supported",
    ),
    (
        with_(response_type="code id_token"),
        PUBLIC,
        "unsupported_response_type",
        "only response_type=code is supported",
    ),
    (
        with_(),
        REFRESH_ONLY,
        "unauthorized_client",
        "this client may not use the authorization code grant",
    ),
    # PKCE
    (
        with_(code_challenge=None, code_challenge_method=None),
        PUBLIC,
        "invalid_request",
        "PKCE is required: send an S256 code_challenge",
    ),
    (
        with_(code_challenge=None, code_challenge_method=None),
        CONFIDENTIAL_PKCE,
        "invalid_request",
        "PKCE is required: send an S256 code_challenge",
    ),
    (
        with_(code_challenge_method="plain"),
        PUBLIC,
        "invalid_request",
        "code_challenge_method must be S256",
    ),
    (
        with_(code_challenge_method="plain"),
        CONFIDENTIAL_NO_PKCE,
        "invalid_request",
        "code_challenge_method must be S256",
    ),
    (
        with_(code_challenge_method=None),  # absent means plain (RFC 7636 §4.3)
        PUBLIC,
        "invalid_request",
        "code_challenge_method must be S256",
    ),
    (
        with_(code_challenge_method="s256"),
        PUBLIC,
        "invalid_request",
        "code_challenge_method must be S256",
    ),
    (
        with_(code_challenge=None),
        CONFIDENTIAL_NO_PKCE,
        "invalid_request",
        "code_challenge_method without code_challenge",
    ),
    (
        with_(code_challenge=CHALLENGE[:42]),
        PUBLIC,
        "invalid_request",
        "an S256 code_challenge is 43 base64url characters",
    ),
    (
        with_(code_challenge=CHALLENGE[:42] + "+"),
        PUBLIC,
        "invalid_request",
        "an S256 code_challenge is 43 base64url characters",
    ),
    (
        with_(code_challenge="a" * 129),
        PUBLIC,
        "invalid_request",
        "code_challenge is too long (at most 128 characters)",
    ),
    # scope
    (
        with_(scope="openid write"),
        PUBLIC,
        "invalid_scope",
        "scope not allowed for this client: write",
    ),
    (with_(scope='openid "x"'), PUBLIC, "invalid_scope", "the scope is malformed"),
    (with_(scope="openid  read"), PUBLIC, "invalid_scope", "the scope is malformed"),
    # other parameters
    (
        [*with_().items(), ("scope", "read")],
        PUBLIC,
        "invalid_request",
        "scope is repeated",
    ),
    (
        [*with_().items(), ("code_challenge", CHALLENGE)],
        PUBLIC,
        "invalid_request",
        "code_challenge is repeated",
    ),
    (
        with_(nonce="n" * 513),
        PUBLIC,
        "invalid_request",
        "nonce is too long (at most 512 characters)",
    ),
    (
        with_(response_mode="fragment"),
        PUBLIC,
        "invalid_request",
        "only response_mode=query is supported",
    ),
    (
        with_(prompt="none"),
        PUBLIC,
        "login_required",
        "keyfob asks for the password on every authorization",
    ),
    (
        with_(request="eyJ..."),
        PUBLIC,
        "request_not_supported",
        "the request parameter is not supported",
    ),
    (
        with_(request_uri="https://x"),
        PUBLIC,
        "request_uri_not_supported",
        "the request_uri parameter is not supported",
    ),
]


@pytest.mark.parametrize(("pairs", "client", "error", "why"), REDIRECTED)
def test_other_refusals_go_back_to_the_client_with_its_state(
    pairs: dict[str, str] | list[tuple[str, str]], client: Client, error: str, why: str
) -> None:
    assert validate_request(params(pairs), client) == Refusal(error, why, REDIRECT, "xyz")


def test_a_bad_state_is_refused_without_echoing_it() -> None:
    oversize = validate_request(params(with_(state="s" * 2049)), PUBLIC)
    assert oversize == Refusal(
        "invalid_request", "state is too long (at most 2048 characters)", REDIRECT, None
    )
    repeated = validate_request(params([*with_().items(), ("state", "other")]), PUBLIC)
    assert repeated == Refusal("invalid_request", "state is repeated", REDIRECT, None)


def test_a_missing_state_is_allowed_and_stays_missing() -> None:
    result = validate_request(params(with_(state=None)), PUBLIC)
    assert isinstance(result, AuthorizationRequest)
    assert result.state is None
    refused = validate_request(params(with_(state=None, scope="write")), PUBLIC)
    assert isinstance(refused, Refusal)
    assert refused.state is None


def test_a_confidential_client_registered_without_pkce_may_omit_it() -> None:
    result = validate_request(
        params(with_(code_challenge=None, code_challenge_method=None)), CONFIDENTIAL_NO_PKCE
    )
    assert isinstance(result, AuthorizationRequest)
    assert result.code_challenge is None


def test_empty_parameters_count_as_omitted_and_unknown_ones_are_ignored() -> None:
    result = validate_request(params(with_(nonce="", scope="", foo="bar", prompt="login")), PUBLIC)
    assert isinstance(result, AuthorizationRequest)
    assert (result.nonce, result.scopes) == (None, ())


def test_the_scope_keeps_its_order_without_repeats() -> None:
    result = validate_request(params(with_(scope="read openid read")), PUBLIC)
    assert isinstance(result, AuthorizationRequest)
    assert result.scopes == ("read", "openid")


def test_the_deployment_s_offered_scopes_bound_the_client_s() -> None:
    query = params(with_(scope="openid profile"))
    assert isinstance(validate_request(query, PUBLIC, offered_scopes=()), AuthorizationRequest)
    assert validate_request(query, PUBLIC, offered_scopes=("openid", "read")) == Refusal(
        "invalid_scope", "scope not allowed for this client: profile", REDIRECT, "xyz"
    )


@pytest.mark.parametrize(
    ("uri", "added", "expected"),
    [
        (
            "https://a.example/cb",
            {"code": "c", "state": "s"},
            "https://a.example/cb?code=c&state=s",
        ),
        ("https://a.example/cb?x=1", {"code": "c"}, "https://a.example/cb?x=1&code=c"),
        ("https://a.example/cb?", {"code": "c"}, "https://a.example/cb?code=c"),
        ("https://a.example/cb", {"code": "c", "state": None}, "https://a.example/cb?code=c"),
        ("com.example.app:/cb", {"state": "a b&c=d"}, "com.example.app:/cb?state=a+b%26c%3Dd"),
        ("https://a.example/cb", {}, "https://a.example/cb"),
    ],
)
def test_redirect_with_keeps_the_registered_query(
    uri: str, added: dict[str, str | None], expected: str
) -> None:
    assert redirect_with(uri, added) == expected


def test_a_state_with_any_characters_comes_back_intact() -> None:
    state = "é &=?#%/+\u202e"
    location = redirect_with(REDIRECT, {"code": "c", "state": state})
    assert parse_qs(urlsplit(location).query)["state"] == [state]
    assert urlsplit(location).netloc == "app.example"


@pytest.mark.parametrize(
    ("uri", "source"),
    [
        ("https://app.example/cb", "https://app.example"),
        ("https://app.example:8443/cb?x=1", "https://app.example:8443"),
        ("http://127.0.0.1:51004/native", "http://127.0.0.1:51004"),
        ("http://[::1]:5000/cb", "http://[::1]:5000"),
        ("com.example.app:/cb", "com.example.app:"),
        ("https://a;b.example/cb", None),  # would end the CSP directive
        ("https://a'b.example/cb", None),
        ("https://app.example:99999/cb", None),
    ],
)
def test_redirect_source_is_a_safe_csp_source(uri: str, source: str | None) -> None:
    assert redirect_source(uri) == source
