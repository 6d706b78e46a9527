"""The browser transport (spec §5, §8): cookie attributes, CSRF defence, no CORS."""

from __future__ import annotations

import logging

import httpx
import pytest

from keyfob import Settings
from keyfob.server import create_app
from keyfob.testing import FrozenClock, MemoryStore

from .conftest import CSRF, PASSWORD, login, register, running

SECURE_COOKIE = "__Secure-keyfob_refresh"


def set_cookie(r: httpx.Response) -> str:
    """The one refresh cookie an answer sets (a login also sets the device cookie)."""
    values = [v for v in r.headers.get_list("set-cookie") if "keyfob_device=" not in v]
    assert len(values) == 1
    return values[0]


def cookie_value(r: httpx.Response) -> str:
    return set_cookie(r).partition("=")[2].partition(";")[0]


async def test_cookie_attributes_are_exact(client: httpx.AsyncClient) -> None:
    """The refresh cookie is __Secure-, HttpOnly, Secure, SameSite=Strict, Path=/auth,
    and lives exactly as long as the session's absolute lifetime (30 days)."""
    await register(client)
    r = await login(client)
    value = cookie_value(r)
    assert set_cookie(r) == (
        f"{SECURE_COOKIE}={value}; Max-Age=2592000; Path=/auth; HttpOnly; Secure; SameSite=Strict"
    )


async def test_cookie_max_age_shrinks_with_the_session(
    client: httpx.AsyncClient, clock: FrozenClock
) -> None:
    """A refresh a day later sets Max-Age to the remaining absolute life, never beyond it."""
    await register(client)
    await login(client)
    clock.advance(86400.5)
    r = await client.post("/auth/refresh", headers=CSRF)
    assert r.status_code == 200
    assert "; Max-Age=2505599;" in set_cookie(r)


async def test_host_mode_uses_a_host_cookie_on_root(clock: FrozenClock) -> None:
    """cookie_mode="host" sets __Host-keyfob_refresh with Path=/ and still refreshes."""
    from keyfob.testing import FAST_SETTINGS

    app = create_app(FAST_SETTINGS.replace(cookie_mode="host"), MemoryStore(), clock)
    async with running(app) as client:
        await register(client)
        r = await login(client)
        assert set_cookie(r).startswith("__Host-keyfob_refresh=kfrt_")
        assert "; Path=/; HttpOnly; Secure; SameSite=Strict" in set_cookie(r)
        r = await client.post("/auth/refresh", headers=CSRF)
        assert r.status_code == 200, r.text


@pytest.mark.parametrize("base_url", ["http://localhost:8000", "http://127.0.0.1:8000"])
async def test_localhost_over_http_keeps_secure(
    settings: Settings, clock: FrozenClock, base_url: str
) -> None:
    """Browsers treat http://localhost as a secure context, so the cookie stays Secure there."""
    app = create_app(settings, MemoryStore(), clock)
    async with running(app, base_url) as client:
        await register(client)
        r = await login(client)
        assert set_cookie(r).startswith(SECURE_COOKIE + "=")
        assert "; Secure;" in set_cookie(r)


async def test_plain_http_elsewhere_refuses_the_cookie(
    settings: Settings, clock: FrozenClock
) -> None:
    """Over plain HTTP to a non-local host, cookie login is refused and body login works."""
    app = create_app(settings, MemoryStore(), clock)
    async with running(app, "http://auth.example.com") as client:
        await register(client)
        r = await client.post("/auth/login", json={"username": "alice", "password": PASSWORD})
        assert r.status_code == 400
        assert r.json()["error"] == "invalid_request"
        assert "HTTPS" in r.json()["error_description"]
        assert "set-cookie" not in r.headers
        r = await login(client, transport="body")
        assert r.json()["refresh_token"]


async def test_insecure_dev_cookies_drop_secure_and_warn(
    settings: Settings, clock: FrozenClock, caplog: pytest.LogCaptureFixture
) -> None:
    """With insecure_dev_cookies, plain HTTP gets an unprefixed cookie without Secure,
    and startup logs a loud warning."""
    app = create_app(settings.replace(insecure_dev_cookies=True), MemoryStore(), clock)
    with caplog.at_level(logging.WARNING, logger="keyfob.server"):
        async with running(app, "http://auth.example.com") as client:
            await register(client)
            r = await login(client)
            assert set_cookie(r).startswith("keyfob_refresh=kfrt_")
            assert "Secure" not in set_cookie(r)
            r = await client.post(
                "/auth/refresh",
                headers={**CSRF, "Cookie": f"keyfob_refresh={cookie_value(r)}"},
            )
            assert r.status_code == 200, r.text
    assert any("INSECURE_DEV_COOKIES" in m for m in caplog.messages)


async def test_refresh_without_the_csrf_header_is_refused(client: httpx.AsyncClient) -> None:
    """A cookie refresh without X-Keyfob-CSRF: 1 is 403, and the cookie still works after."""
    await register(client)
    await login(client)
    for headers in ({}, {"X-Keyfob-CSRF": "0"}, {"X-Keyfob-CSRF": "yes"}):
        r = await client.post("/auth/refresh", headers=headers)
        assert r.status_code == 403
        assert r.json()["error"] == "invalid_request"
        assert "set-cookie" not in r.headers
    assert (await client.post("/auth/refresh", headers=CSRF)).status_code == 200


@pytest.mark.parametrize(
    "origin", ["https://evil.example", "null", "https://testserver.evil.example", "garbage"]
)
async def test_refresh_from_a_foreign_origin_is_refused(
    client: httpx.AsyncClient, origin: str
) -> None:
    """A cookie refresh whose Origin is neither allowed nor the server's own is 403."""
    await register(client)
    await login(client)
    r = await client.post("/auth/refresh", headers={**CSRF, "Origin": origin})
    assert r.status_code == 403
    assert r.json()["error_description"] == "the request's Origin is not allowed"


async def test_refresh_from_own_or_allowed_origin_passes(
    settings: Settings, clock: FrozenClock
) -> None:
    """The server's own origin and each configured allowed origin may refresh by cookie."""
    allowed = settings.replace(allowed_origins=("https://app.example.com",))
    app = create_app(allowed, MemoryStore(), clock)
    async with running(app) as client:
        await register(client)
        await login(client)
        for origin in (
            "https://testserver",
            "https://app.example.com",
            "HTTPS://App.Example.com:443",
        ):
            r = await client.post("/auth/refresh", headers={**CSRF, "Origin": origin})
            assert r.status_code == 200, (origin, r.text)


async def test_cross_site_fetch_metadata_is_refused(client: httpx.AsyncClient) -> None:
    """Sec-Fetch-Site: cross-site on a cookie request is 403 even with the header."""
    await register(client)
    await login(client)
    r = await client.post("/auth/refresh", headers={**CSRF, "Sec-Fetch-Site": "cross-site"})
    assert r.status_code == 403


async def test_login_from_a_foreign_origin_is_refused(client: httpx.AsyncClient) -> None:
    """Cookie login from a foreign Origin is 403 (no login CSRF into another account)."""
    await register(client)
    r = await client.post(
        "/auth/login",
        json={"username": "alice", "password": PASSWORD},
        headers={"Origin": "https://evil.example"},
    )
    assert r.status_code == 403
    assert "set-cookie" not in r.headers


async def test_cookie_and_body_together_are_ambiguous(client: httpx.AsyncClient) -> None:
    """A request carrying a refresh token in both the cookie and the body is refused."""
    await register(client)
    # The body token first: a login over the cookie would end the cookie's session.
    body_token = (await login(client, transport="body")).json()["refresh_token"]
    await login(client)
    r = await client.post("/auth/refresh", headers=CSRF, json={"refresh_token": body_token})
    assert r.status_code == 400
    assert "both" in r.json()["error_description"]
    r = await client.post("/auth/logout", headers=CSRF, json={"refresh_token": body_token})
    assert r.status_code == 400


async def test_a_planted_second_cookie_is_refused(client: httpx.AsyncClient) -> None:
    """Two refresh cookies (one planted beside ours) are refused rather than guessed between."""
    await register(client)
    value = cookie_value(await login(client))
    client.cookies.clear()
    r = await client.post(
        "/auth/refresh",
        headers={**CSRF, "Cookie": f"{SECURE_COOKIE}=kfrt_planted; {SECURE_COOKIE}={value}"},
    )
    assert r.status_code == 400
    assert "Max-Age=0" in set_cookie(r)


async def test_a_dead_cookie_is_deleted_with_the_error(client: httpx.AsyncClient) -> None:
    """A cookie refresh answered invalid_grant also deletes the useless cookie."""
    r = await client.post(
        "/auth/refresh", headers={**CSRF, "Cookie": f"{SECURE_COOKIE}=kfrt_forged"}
    )
    assert r.status_code == 400 and r.json()["error"] == "invalid_grant"
    assert set_cookie(r) == (
        f"{SECURE_COOKIE}=; Max-Age=0; Path=/auth; HttpOnly; Secure; SameSite=Strict"
    )


async def test_logout_by_cookie_needs_the_csrf_header(client: httpx.AsyncClient) -> None:
    """A cross-site page cannot log the user out: cookie logout without the header is 403."""
    await register(client)
    await login(client)
    assert (await client.post("/auth/logout")).status_code == 403
    assert (await client.post("/auth/refresh", headers=CSRF)).status_code == 200


async def test_cors_preflight_is_refused(client: httpx.AsyncClient) -> None:
    """A CORS preflight is answered 403 with no Access-Control-* header, on every route."""
    for path in ("/auth/refresh", "/auth/login", "/oauth/token"):
        r = await client.options(
            path,
            headers={
                "Origin": "https://evil.example",
                "Access-Control-Request-Method": "POST",
                "Access-Control-Request-Headers": "x-keyfob-csrf",
            },
        )
        assert r.status_code == 403
        assert r.json()["error"] == "invalid_request"
        assert not any(h.lower().startswith("access-control-") for h in r.headers)
