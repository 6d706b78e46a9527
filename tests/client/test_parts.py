"""The client's small parts: challenges, Retry-After, request building, token answers."""

from __future__ import annotations

import base64
import json
from urllib.parse import parse_qs

import pytest

from keyfob.client import (
    KeyfobEndpoint,
    OAuthTokenEndpoint,
    RetryPolicy,
    TokenEndpointError,
    TokenSet,
)
from keyfob.client.challenge import is_invalid_token
from keyfob.client.retry import parse_retry_after
from keyfob.client.tokens import jwt_exp, mask, token_set_from_answer

from .fakes import access_token


@pytest.mark.parametrize(
    ("values", "expected"),
    [
        (['Bearer error="invalid_token"'], True),
        (['Bearer realm="api", error="invalid_token", error_description="x, y"'], True),
        (["Bearer error=invalid_token"], True),
        (['bearer realm="a\\"b", error="invalid_token"'], True),
        (['Basic realm="x", Bearer error="invalid_token"'], True),
        (['Basic realm="x"', 'Bearer realm="y", error="invalid_token"'], True),
        (['Bearer realm="api"'], False),
        (['Bearer error="insufficient_scope"'], False),
        (['Basic error="invalid_token"'], False),
        (['Bearer realm="error=\\"invalid_token\\""'], False),
        (["garbage =="], False),
        ([], False),
    ],
)
def test_only_a_bearer_invalid_token_challenge_asks_for_a_refresh(
    values: list[str], expected: bool
) -> None:
    """RFC 6750 §3.1 challenges are parsed, quoting and several schemes included."""
    assert is_invalid_token(values) is expected


@pytest.mark.parametrize(
    ("value", "seconds"),
    [
        ("3", 3.0),
        (" 0 ", 0.0),
        ("Thu, 01 Jan 1970 00:00:10 GMT", 5.0),
        ("Thu, 01 Jan 1970 00:00:01 GMT", 0.0),
        ("-1", None),
        ("soon", None),
        ("1.5", None),
        (None, None),
    ],
)
def test_retry_after_reads_seconds_and_http_dates(value: str | None, seconds: float | None) -> None:
    """Delay-seconds or an HTTP-date (RFC 9110 §10.2.3); anything else is ignored."""
    assert parse_retry_after(value, now=5.0) == seconds


def test_the_retry_policy_backs_off_and_is_bounded() -> None:
    """Backoff doubles up to max_wait; nonsense bounds are refused."""
    policy = RetryPolicy(attempts=5, max_wait=1.5, backoff=0.5)
    assert [policy.backoff_wait(n) for n in range(1, 5)] == [0.5, 1.0, 1.5, 1.5]
    with pytest.raises(ValueError, match="attempts"):
        RetryPolicy(attempts=0)


def test_a_public_client_sends_client_id_in_the_form() -> None:
    """RFC 6749 §6 + §3.2.1: grant_type, refresh_token and client_id, form-encoded."""
    request = OAuthTokenEndpoint("https://a.example/token", "my-cli").refresh_request("rt")
    assert request.method == "POST"
    assert request.headers["content-type"] == "application/x-www-form-urlencoded"
    form = parse_qs(request.content.decode())
    assert form == {
        "grant_type": ["refresh_token"],
        "refresh_token": ["rt"],
        "client_id": ["my-cli"],
    }
    assert "authorization" not in request.headers


def test_a_confidential_client_authenticates_with_basic() -> None:
    """RFC 6749 §2.3.1: id and secret form-urlencoded, then Basic; no client_id in the form."""
    endpoint = OAuthTokenEndpoint("https://a.example/token", "svc 1", client_secret="p:w/d")
    request = endpoint.refresh_request("rt")
    scheme, encoded = request.headers["authorization"].split(" ")
    assert scheme == "Basic"
    assert base64.b64decode(encoded).decode() == "svc+1:p%3Aw%2Fd"
    assert "client_id" not in parse_qs(request.content.decode())
    assert "p:w/d" not in repr(endpoint)


def test_the_keyfob_endpoint_sends_the_token_in_a_json_body() -> None:
    """keyfob's /auth/refresh and /auth/login with transport "body" (spec §4)."""
    endpoint = KeyfobEndpoint("http://127.0.0.1:8000/")
    refresh = endpoint.refresh_request("rt")
    assert str(refresh.url) == "http://127.0.0.1:8000/auth/refresh"
    assert json.loads(refresh.content) == {"refresh_token": "rt"}
    login = endpoint.login_request("alice", "pw")
    assert str(login.url) == "http://127.0.0.1:8000/auth/login"
    assert json.loads(login.content) == {"username": "alice", "password": "pw", "transport": "body"}


@pytest.mark.parametrize(
    "url",
    ["http://auth.example/token", "http://10.0.0.1/token", "ftp://a.example/", "//x/token"],
)
def test_token_urls_must_be_https_except_on_loopback(url: str) -> None:
    """Credentials never travel in clear over a network (RFC 6749 §3.2)."""
    with pytest.raises(ValueError, match="https"):
        OAuthTokenEndpoint(url, "cli")
    with pytest.raises(ValueError, match="https"):
        KeyfobEndpoint(url)


@pytest.mark.parametrize("url", ["http://localhost:1/t", "http://127.0.0.1/t", "http://[::1]/t"])
def test_loopback_token_urls_may_be_plain_http(url: str) -> None:
    """Loopback is not a network: plain http is accepted there."""
    assert OAuthTokenEndpoint(url, "cli").url == url


def test_a_token_answer_keeps_the_old_refresh_token_when_none_is_issued() -> None:
    """RFC 6749 §6: the server may keep the refresh token; the client then keeps using it."""
    body = json.dumps({"access_token": "opaque", "token_type": "bearer", "expires_in": 60})
    tokens = token_set_from_answer(200, body.encode(), now=100.0, previous_refresh_token="old")
    assert tokens == TokenSet(refresh_token="old", access_token="opaque", expires_at=160.0)


@pytest.mark.parametrize(
    "body",
    [
        {"access_token": "a", "token_type": "Bearer"},  # a login answer must carry one
        {"token_type": "Bearer", "refresh_token": "r"},
        {"access_token": "", "token_type": "Bearer", "refresh_token": "r"},
        {"access_token": "a", "refresh_token": "r"},
        {"access_token": "a", "token_type": "Bearer", "refresh_token": 7},
    ],
)
def test_incomplete_token_answers_are_refused(body: dict[str, object]) -> None:
    """A token answer without what RFC 6749 §5.1 requires is an error, not a half pair."""
    with pytest.raises(TokenEndpointError, match="invalid_response"):
        token_set_from_answer(200, json.dumps(body).encode(), now=0, previous_refresh_token=None)


def _answer(access: str, **extra: object) -> bytes:
    return json.dumps(
        {"access_token": access, "token_type": "Bearer", "refresh_token": "r", **extra}
    ).encode()


@pytest.mark.parametrize(
    ("access", "expires_in", "expected"),
    [
        (access_token(0, exp=150.0), 900, 1000.0),  # expires_in wins: immune to clock skew
        (access_token(0, exp=150.0), None, 150.0),  # no expires_in: the JWT's exp
        (access_token(0, exp=50.0), None, None),  # exp already past by our clock: ignored
        ("opaque-token", None, None),  # neither: only a 401 refreshes
        ("opaque-token", True, None),  # a boolean is not a number of seconds
        ("opaque-token", -5, 100.0),  # negative: expired now
    ],
)
def test_expiry_comes_from_expires_in_else_from_the_jwt_exp(
    access: str, expires_in: object, expected: float | None
) -> None:
    """expires_in (relative) first; the unverified JWT exp only when it is absent."""
    extra = {} if expires_in is None else {"expires_in": expires_in}
    tokens = token_set_from_answer(
        200, _answer(access, **extra), now=100.0, previous_refresh_token=None
    )
    assert tokens.expires_at == expected


def test_jwt_exp_reads_only_well_formed_payloads() -> None:
    """Malformed segments or a non-numeric exp give no expiry."""
    assert jwt_exp(access_token(0, exp=7.0)) == 7.0
    assert jwt_exp("a.!!!.c") is None
    assert jwt_exp("a.b") is None
    assert jwt_exp("x." + base64.urlsafe_b64encode(b'{"exp": "soon"}').decode() + ".y") is None
    assert jwt_exp("x." + base64.urlsafe_b64encode(b'{"exp": true}').decode() + ".y") is None


def test_tokens_print_masked() -> None:
    """Long tokens show 5 + 3 characters, short ones nothing."""
    tokens = TokenSet(refresh_token="kfrt_" + "A" * 90 + "9Qx", access_token="short")
    assert repr(tokens) == (
        "TokenSet(refresh_token='kfrt_…9Qx', access_token='…', expires_at=None, scope=None)"
    )
    assert mask(None) == "None"
    with pytest.raises(ValueError, match="refresh token"):
        TokenSet(refresh_token="")
