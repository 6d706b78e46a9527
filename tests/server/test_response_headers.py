"""What answers say about themselves (issue 12.6, 12.7): nothing with a user's data or a
cookie is ever cached; every HTML page has a strict CSP and cannot be framed; and no
answer is a redirect built from the request's ``Host`` header."""

from __future__ import annotations

from pathlib import Path

import httpx
import pytest
from starlette.applications import Starlette
from starlette.routing import Mount, Route

from keyfob.server.responses import CONTENT_SECURITY_POLICY, HTML_SECURITY_HEADERS, html_headers

from .conftest import CSRF, PASSWORD, bearer, login, register
from .uvicorn_process import UvicornProcess

EVIL_HOST = "evil.example"


def assert_no_store(r: httpx.Response) -> None:
    what = f"{r.request.method} {r.request.url.path} -> {r.status_code}"
    assert r.headers.get("cache-control") == "no-store", what
    assert r.headers.get("pragma") == "no-cache", what


async def test_every_auth_answer_is_no_store(client: httpx.AsyncClient) -> None:
    """/auth/* and /oauth/token, successes and errors, cookies set or cleared: no-store."""
    answers = [
        await client.post("/auth/register", json={"username": "alice", "password": PASSWORD})
    ]
    r = await login(client, transport="body")
    answers.append(r)
    tokens = r.json()
    auth = bearer(tokens["access_token"])
    answers.append(await login(client))  # a second session, in the cookie
    answers.append(await client.post("/auth/refresh", headers=CSRF))
    answers.append(await client.get("/auth/me", headers=auth))
    answers.append(r := await client.get("/auth/sessions", headers=auth))
    other = next(s["sid"] for s in r.json()["sessions"] if not s["current"])
    answers.append(await client.delete(f"/auth/sessions/{other}", headers=auth))
    answers.append(
        await client.post(
            "/oauth/token",
            data={"grant_type": "refresh_token", "refresh_token": tokens["refresh_token"]},
        )
    )
    answers.append(await client.post("/auth/logout-all", headers=auth))
    answers.append(await client.post("/auth/logout", headers=CSRF))
    # errors
    answers.append(await client.get("/auth/me"))
    answers.append(await client.get("/auth/sessions", headers=bearer("nope")))
    answers.append(await client.post("/auth/login", json={"username": "alice"}))
    answers.append(await client.post("/auth/refresh", json={"refresh_token": "kfrt_x"}))
    answers.append(await client.post("/oauth/token", data={"grant_type": "password"}))
    answers.append(await client.get("/auth/nothing-here"))
    assert {r.status_code for r in answers} >= {200, 201, 204, 400, 401, 404}
    for r in answers:
        assert_no_store(r)


async def test_me_and_sessions_are_no_store(client: httpx.AsyncClient) -> None:
    """/auth/me and /auth/sessions carry user data: the two named in issue 12.7."""
    await register(client)
    access = (await login(client, transport="body")).json()["access_token"]
    for path in ("/auth/me", "/auth/sessions"):
        r = await client.get(path, headers=bearer(access))
        assert r.status_code == 200
        assert_no_store(r)


@pytest.mark.parametrize("path", ["/", "/static/index.html"])
async def test_html_pages_have_a_strict_policy_and_cannot_be_framed(
    client: httpx.AsyncClient, path: str
) -> None:
    """The demo page, by either URL: CSP with frame-ancestors 'none', no framing, no
    sniffing, no referrer."""
    r = await client.get(path)
    assert r.status_code == 200
    assert r.headers["content-type"].startswith("text/html")
    csp = r.headers["content-security-policy"]
    assert csp == CONTENT_SECURITY_POLICY
    for directive in ("default-src 'none'", "script-src 'self'", "frame-ancestors 'none'",
                      "base-uri 'none'", "form-action 'self'"):  # fmt: skip
        assert directive in csp
    assert "unsafe-inline" not in csp and "unsafe-eval" not in csp
    assert r.headers["x-frame-options"] == "DENY"
    assert r.headers["x-content-type-options"] == "nosniff"
    assert r.headers["referrer-policy"] == "no-referrer"


async def test_static_files_are_never_sniffed(client: httpx.AsyncClient) -> None:
    r = await client.get("/static/keyfob.js")
    assert r.status_code == 200
    assert r.headers["x-content-type-options"] == "nosniff"
    assert "content-security-policy" not in r.headers  # a script, not a page


def test_html_headers_cannot_be_loosened_by_a_page() -> None:
    """The helper future pages (login, consent) use: their own headers stay, the
    security ones win."""
    headers = html_headers({"Cache-Control": "no-store", "X-Frame-Options": "ALLOWALL"})
    assert headers["Cache-Control"] == "no-store"
    assert {k: headers[k] for k in HTML_SECURITY_HEADERS} == dict(HTML_SECURITY_HEADERS)


def _trailing_slash_requests(app: Starlette) -> list[tuple[str, str]]:
    """(method, path + "/") for every route and method the app has."""
    requests = []
    for route in app.routes:
        if isinstance(route, Route):
            path = route.path.replace("{sid}", "some-sid")
            if path == "/":
                continue  # "/" already ends with a slash; "//" is not a trailing slash
            for method in sorted(route.methods or ()):
                requests.append((method, path + "/"))
        elif isinstance(route, Mount):
            requests.append(("GET", route.path + "/"))
    return requests


async def test_no_route_redirects_a_trailing_slash(
    app: Starlette, client: httpx.AsyncClient
) -> None:
    """Every route, with a trailing slash and an evil Host: a JSON 404 and no Location,
    never a redirect to http://evil.example/... (a 307 would carry the password there)."""
    requests = _trailing_slash_requests(app)
    assert ("POST", "/auth/login/") in requests and len(requests) > 10
    for method, path in requests:
        r = await client.request(
            method,
            path,
            headers={"Host": EVIL_HOST},
            json={"username": "alice", "password": PASSWORD} if method == "POST" else None,
        )
        assert r.status_code == 404, (method, path, r.status_code)
        assert "location" not in r.headers
        if method != "HEAD":
            assert r.json()["error"] == "not_found"
        assert EVIL_HOST not in r.text


@pytest.mark.slow
def test_serve_answers_a_trailing_slash_login_with_404(tmp_path: Path) -> None:
    """The same through keyfob serve: POST /auth/login/ with an evil Host is a 404."""
    with UvicornProcess(tmp_path, serve=True) as server:
        r = httpx.post(
            server.url + "/auth/login/",
            json={"username": "alice", "password": PASSWORD},
            headers={"Host": EVIL_HOST},
            follow_redirects=False,
        )
    assert r.status_code == 404
    assert "location" not in r.headers
