"""RemoteVerifier: a service that is not the auth server verifies keyfob's access tokens
from the published JWKS, fetched as HTTP caching says, and survives a misbehaving issuer."""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Iterator

import httpx
import pytest

from keyfob.exceptions import (
    AccessTokenRevoked,
    BadSignature,
    ExpiredAccessToken,
    InvalidClaims,
    InvalidToken,
    IssuerUnavailable,
    MalformedAccessToken,
    UnknownKeyId,
)
from keyfob.resource_server import JWKSPolicy, RemoteVerifier
from keyfob.testing import FrozenClock
from tests.resource.issuer import ISSUER, JWKSEndpoint, MintedTokens, mint_tokens


@pytest.fixture(scope="module")
def minted() -> MintedTokens:
    return mint_tokens()


@pytest.fixture
def endpoint(minted: MintedTokens) -> JWKSEndpoint:
    return JWKSEndpoint(minted.jwks)


@pytest.fixture
def clock() -> FrozenClock:
    return FrozenClock(time.time())


@pytest.fixture
def verifier(endpoint: JWKSEndpoint, clock: FrozenClock) -> Iterator[RemoteVerifier]:
    with RemoteVerifier(ISSUER, http_client=endpoint.client(), clock=clock) as verifier:
        yield verifier


# --- what is verified -------------------------------------------------------------------


def test_a_token_of_the_issuer_verifies_with_its_published_keys(
    verifier: RemoteVerifier, minted: MintedTokens, endpoint: JWKSEndpoint
) -> None:
    principal = verifier.verify_access_token(minted.tokens["read write"])
    assert principal.scopes == {"notes:read", "notes:write"}
    assert principal.has_scopes(["notes:read"])
    assert str(endpoint.requests[0].url) == f"{ISSUER}/.well-known/jwks.json"


@pytest.mark.parametrize(
    ("mangle", "refusal"),
    [
        (lambda t: t[:-4] + ("AAAA" if not t.endswith("AAAA") else "BBBB"), BadSignature),
        (lambda t: t.split(".")[0] + "..", MalformedAccessToken),
        (lambda t: "not-a-jwt", MalformedAccessToken),
        (lambda t: t + "." + t, MalformedAccessToken),
    ],
)
def test_altered_tokens_are_refused(
    verifier: RemoteVerifier,
    minted: MintedTokens,
    mangle,
    refusal,  # type: ignore[no-untyped-def]
) -> None:
    with pytest.raises(refusal):
        verifier.verify_access_token(mangle(minted.tokens["plain"]))


def test_an_expired_token_is_refused(verifier: RemoteVerifier, minted: MintedTokens) -> None:
    with pytest.raises(ExpiredAccessToken):
        verifier.verify_access_token(minted.tokens["expired"])


def test_a_token_for_another_audience_is_refused(
    endpoint: JWKSEndpoint, minted: MintedTokens
) -> None:
    v = RemoteVerifier(ISSUER, audience="https://api.test", http_client=endpoint.client())
    with v, pytest.raises(InvalidClaims):
        v.verify_access_token(minted.tokens["plain"])


def test_a_token_from_another_issuer_is_refused(
    endpoint: JWKSEndpoint, minted: MintedTokens
) -> None:
    v = RemoteVerifier(
        "https://elsewhere.test",
        jwks_uri=f"{ISSUER}/.well-known/jwks.json",
        http_client=endpoint.client(),
    )
    with v, pytest.raises(InvalidClaims):
        v.verify_access_token(minted.tokens["plain"])


def test_an_impostors_token_under_the_same_issuer_name_is_refused(
    verifier: RemoteVerifier, minted: MintedTokens
) -> None:
    with pytest.raises(UnknownKeyId):
        verifier.verify_access_token(minted.foreign_token)


def test_alg_none_and_hmac_tokens_are_refused_before_any_key_is_used(
    verifier: RemoteVerifier, minted: MintedTokens
) -> None:
    import base64
    import hashlib
    import hmac
    import json

    def b64(data: bytes) -> str:
        return base64.urlsafe_b64encode(data).rstrip(b"=").decode()

    header, payload, _ = minted.tokens["plain"].split(".")
    kid = json.loads(base64.urlsafe_b64decode(header + "=="))["kid"]
    none = b64(json.dumps({"alg": "none", "typ": "at+jwt", "kid": kid}).encode())
    with pytest.raises(MalformedAccessToken):
        verifier.verify_access_token(f"{none}.{payload}.")
    # HS256 keyed with the public key's JSON: the classic algorithm-confusion forgery.
    hs = b64(json.dumps({"alg": "HS256", "typ": "at+jwt", "kid": kid}).encode())
    public = json.dumps(minted.jwks).encode()
    mac = hmac.new(public, f"{hs}.{payload}".encode(), hashlib.sha256).digest()
    with pytest.raises(MalformedAccessToken):
        verifier.verify_access_token(f"{hs}.{payload}.{b64(mac)}")


def test_a_revoked_session_is_refused_once_told(
    verifier: RemoteVerifier, minted: MintedTokens
) -> None:
    verifier.verify_access_token(minted.tokens["revoked"])
    verifier.remember_revoked(minted.revoked_sid, minted.revoked_at)
    with pytest.raises(AccessTokenRevoked):
        verifier.verify_access_token(minted.tokens["revoked"])


# --- when the JWKS is fetched -----------------------------------------------------------


def test_the_keys_are_fetched_once_while_fresh(
    verifier: RemoteVerifier, minted: MintedTokens, endpoint: JWKSEndpoint, clock: FrozenClock
) -> None:
    for _ in range(5):
        verifier.verify_access_token(minted.tokens["plain"])
    clock.advance(299)
    verifier.verify_access_token(minted.tokens["plain"])
    assert len(endpoint.requests) == 1
    clock.advance(2)  # past max-age=300
    verifier.verify_access_token(minted.tokens["plain"])
    assert len(endpoint.requests) == 2


def test_max_age_is_clamped_so_zero_is_not_a_fetch_per_request(
    endpoint: JWKSEndpoint, minted: MintedTokens, clock: FrozenClock
) -> None:
    endpoint.cache_control = "max-age=0"
    policy = JWKSPolicy(min_ttl=30)
    with RemoteVerifier(ISSUER, http_client=endpoint.client(), clock=clock, policy=policy) as v:
        for _ in range(10):
            v.verify_access_token(minted.tokens["plain"])
        assert len(endpoint.requests) == 1
        clock.advance(31)
        v.verify_access_token(minted.tokens["plain"])
        assert len(endpoint.requests) == 2


def test_an_etag_revalidates_with_304(
    verifier: RemoteVerifier, minted: MintedTokens, endpoint: JWKSEndpoint, clock: FrozenClock
) -> None:
    endpoint.etag = '"v1"'
    verifier.verify_access_token(minted.tokens["plain"])
    clock.advance(301)
    verifier.verify_access_token(minted.tokens["plain"])
    assert endpoint.requests[1].headers["if-none-match"] == '"v1"'
    assert verifier.health().fresh and verifier.health().keys_loaded == 1


def test_an_unknown_kid_refetches_at_most_once_per_interval(
    verifier: RemoteVerifier, minted: MintedTokens, endpoint: JWKSEndpoint, clock: FrozenClock
) -> None:
    verifier.verify_access_token(minted.tokens["plain"])
    for _ in range(50):  # forged kids cannot buy a fetch each
        with pytest.raises(UnknownKeyId):
            verifier.verify_access_token(minted.foreign_token)
    assert len(endpoint.requests) == 2
    # The issuer publishes a new key: a token signed by it verifies after the interval.
    endpoint.jwks = {"keys": [*minted.jwks["keys"], *minted.foreign_jwks["keys"]]}  # type: ignore[misc]
    clock.advance(verifier.policy.unknown_kid_interval)
    assert verifier.verify_access_token(minted.foreign_token).user_id


# --- a misbehaving issuer ---------------------------------------------------------------


@pytest.mark.parametrize(
    "answer",
    [
        httpx.Response(500, text="oops"),
        httpx.Response(200, text="<html>not json</html>"),
        httpx.Response(200, json=["a", "list"]),
        httpx.Response(200, json={"keys": [{"kty": "oct", "k": "c2VjcmV0"}]}),
        httpx.Response(200, json={"keys": []}),
        httpx.Response(200, content=b'{"keys": [' + b" " * (300 * 1024) + b"]}"),
        httpx.Response(302, headers={"Location": "https://evil.test/jwks.json"}),
    ],
    ids=["500", "html", "list", "symmetric-key", "empty", "oversized", "redirect"],
)
def test_no_keys_yet_is_a_503_never_a_401_and_the_fetch_backs_off(
    endpoint: JWKSEndpoint, minted: MintedTokens, clock: FrozenClock, answer: httpx.Response
) -> None:
    endpoint.respond = lambda request: answer
    with RemoteVerifier(ISSUER, http_client=endpoint.client(), clock=clock) as v:
        with pytest.raises(IssuerUnavailable) as refused:
            v.verify_access_token(minted.tokens["plain"])
        assert refused.value.status_code == 503 and refused.value.retry_after >= 1
        for _ in range(5):
            with pytest.raises(IssuerUnavailable):
                v.verify_access_token(minted.tokens["plain"])
        assert len(endpoint.requests) == 1, "failures are retried after a delay, not per request"
        health = v.health()
        assert health.keys_loaded == 0 and health.last_error
        # The issuer recovers: after the back-off, the next request fetches and verifies.
        endpoint.respond = None
        clock.advance(v.policy.retry_interval)
        assert v.verify_access_token(minted.tokens["plain"]).user_id


def test_after_a_good_fetch_failures_keep_the_last_good_keys(
    verifier: RemoteVerifier, minted: MintedTokens, endpoint: JWKSEndpoint, clock: FrozenClock
) -> None:
    verifier.verify_access_token(minted.tokens["plain"])
    endpoint.respond = lambda request: httpx.Response(503)
    clock.advance(301)
    assert verifier.verify_access_token(minted.tokens["read"]).scopes == {"notes:read"}
    health = verifier.health()
    assert health.keys_loaded == 1 and not health.fresh
    assert health.last_error == "the JWKS answered HTTP 503"


def test_an_unreachable_issuer_is_a_503(minted: MintedTokens) -> None:
    def refuse(request: httpx.Request) -> httpx.Response:
        raise httpx.ConnectError("connection refused", request=request)

    client = httpx.Client(transport=httpx.MockTransport(refuse))
    with RemoteVerifier(ISSUER, http_client=client) as v, pytest.raises(IssuerUnavailable):
        v.verify_access_token(minted.tokens["plain"])
    assert "ConnectError" in (v.health().last_error or "")


# --- real sockets: slow issuers are bounded ---------------------------------------------


class _SlowServer:
    """Accepts connections and answers slowly: a stalled head, or a body dripped forever."""

    def __init__(self, mode: str) -> None:
        import socket

        self.mode = mode
        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen()
        self.url = f"http://127.0.0.1:{self.sock.getsockname()[1]}/jwks.json"
        self.stop = threading.Event()
        threading.Thread(target=self._serve, daemon=True).start()

    def _serve(self) -> None:
        self.sock.settimeout(0.2)
        while not self.stop.is_set():
            try:
                conn, _ = self.sock.accept()
            except OSError:
                continue
            threading.Thread(target=self._answer, args=(conn,), daemon=True).start()

    def _answer(self, conn) -> None:  # type: ignore[no-untyped-def]
        with conn:
            conn.recv(65536)
            if self.mode == "drip":
                conn.sendall(b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\n\r\n{")
            while not self.stop.wait(0.1):
                if self.mode == "drip":
                    try:
                        conn.sendall(b" ")
                    except OSError:
                        return

    def close(self) -> None:
        self.stop.set()
        self.sock.close()


@pytest.mark.parametrize("mode", ["stall", "drip"])
def test_a_slow_issuer_costs_at_most_the_timeout(minted: MintedTokens, mode: str) -> None:
    server = _SlowServer(mode)
    try:
        with RemoteVerifier(ISSUER, jwks_uri=server.url, policy=JWKSPolicy(timeout=0.5)) as v:
            started = time.monotonic()
            with pytest.raises(IssuerUnavailable):
                v.verify_access_token(minted.tokens["plain"])
            # A hang guard, not a speed target: the fetch gives up near its timeout.
            assert time.monotonic() - started < 5
            assert "timed out" in (v.health().last_error or "")
    finally:
        server.close()


async def test_a_slow_issuer_is_bounded_in_asyncio_too(minted: MintedTokens) -> None:
    server = _SlowServer("drip")
    try:
        async with RemoteVerifier(ISSUER, jwks_uri=server.url, policy=JWKSPolicy(timeout=0.5)) as v:
            with pytest.raises(IssuerUnavailable):
                await asyncio.wait_for(v.verify_access_token_fresh(minted.tokens["plain"]), 5)
    finally:
        server.close()


# --- concurrency: one fetch for many callers --------------------------------------------


def test_threads_share_one_fetch(minted: MintedTokens) -> None:
    fetching = threading.Event()
    release = threading.Event()
    endpoint = JWKSEndpoint(minted.jwks)

    def slow(request: httpx.Request) -> httpx.Response:
        fetching.set()
        release.wait(5)
        return httpx.Response(200, json=minted.jwks)

    endpoint.respond = slow
    with RemoteVerifier(ISSUER, http_client=endpoint.client()) as v:
        results: list[str] = []
        threads = [
            threading.Thread(
                target=lambda: results.append(v.verify_access_token(minted.tokens["plain"]).sid)
            )
            for _ in range(20)
        ]
        for thread in threads:
            thread.start()
        assert fetching.wait(5)
        release.set()
        for thread in threads:
            thread.join(5)
    assert len(results) == 20
    assert len(endpoint.requests) == 1


async def test_tasks_share_one_fetch(minted: MintedTokens) -> None:
    endpoint = JWKSEndpoint(minted.jwks)
    async with RemoteVerifier(ISSUER, async_http_client=endpoint.async_client()) as v:
        principals = await asyncio.gather(
            *(v.verify_access_token_fresh(minted.tokens["read"]) for _ in range(20))
        )
    assert {p.scopes for p in principals} == {frozenset({"notes:read"})}
    assert len(endpoint.requests) == 1


def test_every_refusal_is_an_invalid_token_or_a_503(
    verifier: RemoteVerifier, minted: MintedTokens
) -> None:
    """The contract the integrations rely on: nothing else escapes for any input."""
    token = minted.tokens["plain"]
    candidates = ["", " ", "a.b.c", token[::-1], token.upper(), "x" * 20_000, token + "=", "é.é.é"]
    for candidate in candidates:
        with pytest.raises((InvalidToken, IssuerUnavailable)):
            verifier.verify_access_token(candidate)
