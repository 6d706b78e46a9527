"""The client's address behind proxies (issue 12.1): KEYFOB_FORWARDED_ALLOW_IPS decides,
never a client's own X-Forwarded-For, and never uvicorn's defaults."""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

from keyfob import Settings
from keyfob.exceptions import ConfigurationError
from keyfob.integrations.starlette import forwarded_middleware
from keyfob.server import create_app
from keyfob.settings.model import FAST_SETTINGS_OVERRIDES
from keyfob.testing import FrozenClock, MemoryStore
from keyfob.transports.forwarded import ForwardedClient, TrustedProxies

from .conftest import PASSWORD, bearer, unlimited
from .uvicorn_process import UvicornProcess

PROXY = "10.0.0.7"


def headers(**values: str) -> list[tuple[bytes, bytes]]:
    return [(name.replace("_", "-").encode(), value.encode()) for name, value in values.items()]


# The rules, as a table: (trusted, peer, headers, expected client or None for "the peer").
CASES = [
    pytest.param((), "1.2.3.4", {"x_forwarded_for": "9.9.9.9"}, None, id="nobody-trusted"),
    pytest.param((PROXY,), "1.2.3.4", {"x_forwarded_for": "9.9.9.9"}, None, id="peer-not-trusted"),
    pytest.param((PROXY,), PROXY, {}, None, id="trusted-peer-forwards-nothing"),
    pytest.param((PROXY,), PROXY, {"x_forwarded_for": "203.0.113.5"}, ("203.0.113.5", None),
                 id="one-hop"),
    pytest.param((PROXY,), PROXY, {"x_forwarded_for": "6.6.6.6, 203.0.113.5"},
                 ("203.0.113.5", None), id="client-written-hops-ignored"),
    pytest.param(("10.0.0.0/8",), PROXY, {"x_forwarded_for": "6.6.6.6, 203.0.113.5, 10.1.2.3"},
                 ("203.0.113.5", None), id="rightmost-untrusted-through-a-chain"),
    pytest.param(("10.0.0.0/8",), PROXY, {"x_forwarded_for": "10.9.9.9, 10.1.2.3"},
                 ("10.9.9.9", None), id="all-trusted-leftmost"),
    pytest.param((PROXY,), PROXY, {"x_forwarded_for": "6.6.6.6, unknown"}, (PROXY, None),
                 id="not-an-address-stops-at-last-trusted"),
    pytest.param(("10.0.0.0/8",), PROXY, {"x_forwarded_for": "garbage, 10.1.2.3"},
                 ("10.1.2.3", None), id="garbage-beyond-a-trusted-hop"),
    pytest.param((PROXY,), PROXY, {"x_forwarded_for": "203.0.113.5:4711"}, ("203.0.113.5", None),
                 id="ipv4-with-port"),
    pytest.param((PROXY,), PROXY, {"x_forwarded_for": "[2001:db8::1]:4711"},
                 ("2001:db8::1", None), id="ipv6-bracketed-with-port"),
    pytest.param((PROXY,), f"::ffff:{PROXY}", {"x_forwarded_for": "2001:DB8::1"},
                 ("2001:db8::1", None), id="ipv4-mapped-peer-and-normalized-ipv6"),
    pytest.param((PROXY,), PROXY, {"forwarded": 'for=6.6.6.6, for="[2001:db8::7]:80";proto=https'},
                 ("2001:db8::7", "https"), id="rfc7239-rightmost-with-proto"),
    pytest.param((PROXY,), PROXY, {"forwarded": "for=203.0.113.5;proto=http;by=10.0.0.7"},
                 ("203.0.113.5", "http"), id="rfc7239-pairs"),
    pytest.param((PROXY,), PROXY, {"forwarded": 'For="_hidden"'}, (PROXY, None),
                 id="rfc7239-obfuscated-is-not-an-address"),
    pytest.param((PROXY,), PROXY, {"forwarded": "for=1.2.3.4;;"}, (PROXY, None),
                 id="rfc7239-malformed-names-nobody"),
    pytest.param((PROXY,), PROXY, {"forwarded": "for=6.6.6.6", "x_forwarded_for": "203.0.113.5"},
                 (PROXY, None), id="two-headers-disagree-peer-wins"),
    pytest.param((PROXY,), PROXY,
                 {"forwarded": "for=203.0.113.5", "x_forwarded_for": "203.0.113.5"},
                 ("203.0.113.5", None), id="two-headers-agree"),
    pytest.param((PROXY,), PROXY,
                 {"x_forwarded_for": "203.0.113.5", "x_forwarded_proto": "https"},
                 ("203.0.113.5", "https"), id="x-forwarded-proto"),
    pytest.param((PROXY,), PROXY, {"x_forwarded_for": "6.6.6.6, 203.0.113.5",
                                   "x_forwarded_proto": "https, http"},
                 ("203.0.113.5", "http"), id="x-forwarded-proto-per-hop"),
    pytest.param((PROXY,), PROXY, {"x_forwarded_proto": "gopher"}, (PROXY, None),
                 id="unknown-proto-ignored"),
]  # fmt: skip


@pytest.mark.parametrize(("trusted", "peer", "sent", "expected"), CASES)
def test_client_resolution_rules(
    trusted: tuple[str, ...],
    peer: str,
    sent: dict[str, str],
    expected: tuple[str, str | None] | None,
) -> None:
    """The rightmost hop no trusted proxy vouches for is the client; everything a
    client could have written is ignored; anything unreadable falls back to the proxy."""
    found = TrustedProxies(trusted).client(peer, headers(**sent))
    assert found == (None if expected is None else ForwardedClient(*expected))


def test_bad_trusted_proxy_settings_are_refused() -> None:
    """A name or '*' is a configuration error, never silently a literal (as in uvicorn)."""
    for bad in ("proxy.internal", "*", "10.0.0.1/8"):
        with pytest.raises(ConfigurationError):
            Settings.from_env(environ={"KEYFOB_FORWARDED_ALLOW_IPS": bad})
        with pytest.raises(ConfigurationError):
            TrustedProxies([bad])
    settings = Settings.from_env(environ={"KEYFOB_FORWARDED_ALLOW_IPS": "10.0.0.5, 10.1.0.0/16"})
    assert settings.forwarded_allow_ips == ("10.0.0.5/32", "10.1.0.0/16")
    assert Settings().forwarded_allow_ips == ()


def test_untrusted_forwarding_is_warned_about_once(caplog: pytest.LogCaptureFixture) -> None:
    """A peer that forwards without being trusted is probably an unconfigured proxy."""
    proxies = TrustedProxies()
    with caplog.at_level(logging.WARNING, logger="keyfob"):
        for _ in range(3):
            assert proxies.client("10.0.0.9", headers(x_forwarded_for="1.2.3.4")) is None
    warnings = [r for r in caplog.records if "KEYFOB_FORWARDED_ALLOW_IPS" in r.getMessage()]
    assert len(warnings) == 1
    assert "10.0.0.9" in warnings[0].getMessage()


# In process: the app with a peer address of the test's choosing.


async def _login_ip(
    trusted: tuple[str, ...], peer: str, forwarded_for: str | None, *, user: str = "alice"
) -> str:
    """Log in through the app from ``peer``; the address the session recorded."""
    settings = Settings.from_env(
        {**FAST_SETTINGS_OVERRIDES, "forwarded_allow_ips": trusted}, environ={}
    )
    app = create_app(settings, MemoryStore(), FrozenClock(), rate_limits=unlimited())
    extra = {} if forwarded_for is None else {"X-Forwarded-For": forwarded_for}
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app, client=(peer, 5555))
        async with httpx.AsyncClient(transport=transport, base_url="https://testserver") as c:
            body = {"username": user, "password": PASSWORD}
            assert (await c.post("/auth/register", json=body)).status_code == 201
            r = await c.post("/auth/login", json={**body, "transport": "body"}, headers=extra)
            assert r.status_code == 200, r.text
            r = await c.get("/auth/sessions", headers=bearer(r.json()["access_token"]))
            (session,) = r.json()["sessions"]
            return str(session["device"]["ip"])


async def test_session_records_the_forwarded_client_only_from_a_trusted_proxy() -> None:
    """create_app takes the trusted proxies from settings; the session's IP follows them."""
    assert await _login_ip((), PROXY, "203.0.113.5") == PROXY
    assert await _login_ip((PROXY,), PROXY, "6.6.6.6, 203.0.113.5") == "203.0.113.5"
    assert await _login_ip((PROXY,), "192.0.2.1", "203.0.113.5") == "192.0.2.1"


async def test_forwarded_middleware_for_a_users_own_starlette_routes() -> None:
    """The Starlette integration resolves request.client by the same rules."""

    async def whoami(request: Request) -> JSONResponse:
        assert request.client is not None
        return JSONResponse({"client": request.client.host, "scheme": request.url.scheme})

    app = Starlette(routes=[Route("/whoami", whoami)], middleware=[forwarded_middleware([PROXY])])
    transport = httpx.ASGITransport(app, client=(PROXY, 1))
    async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as c:
        r = await c.get(
            "/whoami",
            headers={"X-Forwarded-For": "6.6.6.6, 203.0.113.5", "X-Forwarded-Proto": "https"},
        )
    assert r.json() == {"client": "203.0.113.5", "scheme": "https"}


# Through real server processes: uvicorn's own proxy handling must not decide.


@pytest.fixture
def served(tmp_path: Path) -> Iterator[UvicornProcess]:
    """``keyfob serve`` with the default: no proxy is trusted."""
    with UvicornProcess(tmp_path, serve=True) as server:
        yield server


@pytest.mark.slow
def test_serve_ignores_x_forwarded_for_from_loopback_by_default(served: UvicornProcess) -> None:
    """uvicorn trusts 127.0.0.1 by default: under keyfob serve a local client that varies
    X-Forwarded-For still meets the per-address register limit, its sessions record
    127.0.0.1, and the ignored header is warned about once."""
    with httpx.Client(base_url=served.url, timeout=10) as client:
        body = {"username": "alice", "password": PASSWORD}
        assert client.post("/auth/register", json=body).status_code == 201
        r = client.post(
            "/auth/login", json={**body, "transport": "body"},
            headers={"X-Forwarded-For": "203.0.113.5"},
        )  # fmt: skip
        assert r.status_code == 200, r.text
        r = client.get("/auth/sessions", headers=bearer(r.json()["access_token"]))
        assert [s["device"]["ip"] for s in r.json()["sessions"]] == ["127.0.0.1"]
        statuses = []
        for n in range(200):  # far beyond any per-address register budget
            r = client.post(
                "/auth/register",
                json={"username": f"user{n}", "password": PASSWORD},
                headers={"X-Forwarded-For": f"198.51.100.{n % 250}"},
            )
            statuses.append(r.status_code)
            if r.status_code == 429:
                break
        assert statuses[-1] == 429, statuses
    assert served.output().count("KEYFOB_FORWARDED_ALLOW_IPS") == 1


@pytest.mark.slow
def test_serve_takes_the_client_from_a_configured_proxy(tmp_path: Path) -> None:
    """With KEYFOB_FORWARDED_ALLOW_IPS=127.0.0.1 the rightmost untrusted X-Forwarded-For
    hop is the session's address, and X-Forwarded-Proto: https lets the Secure cookie
    be set for a non-local Host (the proxy terminated TLS)."""
    env = {"KEYFOB_FORWARDED_ALLOW_IPS": "127.0.0.1"}
    with (
        UvicornProcess(tmp_path, serve=True, env=env) as server,
        httpx.Client(base_url=server.url, timeout=10) as client,
    ):
        body = {"username": "alice", "password": PASSWORD}
        assert client.post("/auth/register", json=body).status_code == 201
        r = client.post(
            "/auth/login",
            json=body,
            headers={
                "X-Forwarded-For": "6.6.6.6, 203.0.113.5",
                "X-Forwarded-Proto": "https",
                "Host": "auth.example.com",
            },
        )
        assert r.status_code == 200, r.text
        assert "; Secure" in r.headers["set-cookie"]
        r = client.get("/auth/sessions", headers=bearer(r.json()["access_token"]))
        assert [s["device"]["ip"] for s in r.json()["sessions"]] == ["203.0.113.5"]


@pytest.mark.slow
@pytest.mark.parametrize("access_log", ["on", "off"])
def test_serve_access_log_follows_the_setting_and_the_resolved_client(
    tmp_path: Path, access_log: str
) -> None:
    """KEYFOB_ACCESS_LOG turns serve's access log on or off; when on, it names the client
    the trusted proxy forwarded for, not the proxy."""
    env = {"KEYFOB_ACCESS_LOG": access_log, "KEYFOB_FORWARDED_ALLOW_IPS": "127.0.0.1"}
    with UvicornProcess(tmp_path, serve=True, env=env, log_level="info") as server:
        r = httpx.get(
            server.url + "/.well-known/jwks.json", headers={"X-Forwarded-For": "203.0.113.5"}
        )
        assert r.status_code == 200
        time.sleep(0.2)  # the log line is written as the answer starts; let it land
        lines = [
            line
            for line in server.output().splitlines()
            if '"route":"/.well-known/jwks.json"' in line
        ]
    if access_log == "on":
        # keyfob's request log (one JSON line per request) replaces uvicorn's access log.
        # The readiness probes came without the header: the last line is the test's.
        assert json.loads(lines[-1])["client"] == "203.0.113.5", lines
    else:
        assert lines == []
