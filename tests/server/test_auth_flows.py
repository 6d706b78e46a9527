"""The first-party API end to end, with the refresh token in the cookie and in the body."""

from __future__ import annotations

import asyncio

import httpx

from keyfob.testing import FrozenClock

from .conftest import CSRF, PASSWORD, bearer, login, register

COOKIE = "__Secure-keyfob_refresh"


async def test_register_answers_201_with_the_account(client: httpx.AsyncClient) -> None:
    """Registering answers 201 with the new account's id and username."""
    r = await client.post("/auth/register", json={"username": "alice", "password": PASSWORD})
    assert r.status_code == 201
    body = r.json()
    assert body["username"] == "alice" and body["id"]


async def test_cookie_flow_login_refresh_me_logout(client: httpx.AsyncClient) -> None:
    """Cookie transport: the refresh token lives only in the cookie, rotates, and logout ends it."""
    user_id = await register(client)
    r = await login(client)
    body = r.json()
    assert set(body) == {"access_token", "token_type", "expires_in"}
    assert body["token_type"] == "Bearer" and body["expires_in"] == 900
    first = client.cookies[COOKIE]
    assert first.startswith("kfrt_")

    r = await client.post("/auth/refresh", headers=CSRF)
    assert r.status_code == 200, r.text
    assert "refresh_token" not in r.json()
    second = client.cookies[COOKIE]
    assert second != first
    access = r.json()["access_token"]

    me = await client.get("/auth/me", headers=bearer(access))
    assert me.status_code == 200
    assert me.json()["sub"] == user_id and me.json()["client_id"] == "keyfob"

    r = await client.post("/auth/logout", headers=CSRF)
    assert r.status_code == 204
    assert COOKIE not in client.cookies
    refused = await client.get("/auth/me", headers=bearer(access))
    assert refused.status_code == 401
    assert refused.json()["error"] == "invalid_token"


async def test_body_flow_login_refresh_logout(client: httpx.AsyncClient) -> None:
    """Body transport: the refresh token travels in JSON, and no cookie is ever set."""
    await register(client)
    r = await login(client, transport="body")
    assert "set-cookie" not in r.headers
    token = r.json()["refresh_token"]

    r = await client.post("/auth/refresh", json={"refresh_token": token})
    assert r.status_code == 200, r.text
    successor = r.json()["refresh_token"]
    assert successor != token and "set-cookie" not in r.headers

    r = await client.post("/auth/logout", json={"refresh_token": successor})
    assert r.status_code == 204
    r = await client.post("/auth/refresh", json={"refresh_token": successor})
    assert r.status_code == 400 and r.json()["error"] == "invalid_grant"


async def test_reused_refresh_token_revokes_the_session(
    client: httpx.AsyncClient, clock: FrozenClock
) -> None:
    """An old token presented after the grace window is reuse: invalid_grant, session revoked."""
    await register(client)
    token = (await login(client, transport="body")).json()["refresh_token"]
    r = await client.post("/auth/refresh", json={"refresh_token": token})
    successor, access = r.json()["refresh_token"], r.json()["access_token"]
    clock.advance(11)

    r = await client.post("/auth/refresh", json={"refresh_token": token})
    assert r.status_code == 400 and r.json()["error"] == "invalid_grant"
    r = await client.post("/auth/refresh", json={"refresh_token": successor})
    assert r.status_code == 400
    assert (await client.get("/auth/me", headers=bearer(access))).status_code == 401


async def test_racing_refreshes_get_the_identical_successor(client: httpx.AsyncClient) -> None:
    """Concurrent refreshes of one token within grace all get the same successor."""
    await register(client)
    token = (await login(client, transport="body")).json()["refresh_token"]
    answers = await asyncio.gather(
        *(client.post("/auth/refresh", json={"refresh_token": token}) for _ in range(10))
    )
    assert {r.status_code for r in answers} == {200}
    assert len({r.json()["refresh_token"] for r in answers}) == 1


async def test_logout_by_access_token(client: httpx.AsyncClient) -> None:
    """Logout with only a bearer access token revokes that token's session."""
    await register(client)
    body = (await login(client, transport="body")).json()
    r = await client.post("/auth/logout", headers=bearer(body["access_token"]))
    assert r.status_code == 204
    r = await client.post("/auth/refresh", json={"refresh_token": body["refresh_token"]})
    assert r.status_code == 400 and r.json()["error"] == "invalid_grant"


async def test_logout_is_idempotent(client: httpx.AsyncClient) -> None:
    """Logging out twice, or with a token that is not ours, still answers 204."""
    await register(client)
    token = (await login(client, transport="body")).json()["refresh_token"]
    for presented in (token, token, "kfrt_not-a-token"):
        r = await client.post("/auth/logout", json={"refresh_token": presented})
        assert r.status_code == 204
    assert (await client.post("/auth/logout")).status_code == 204


async def test_logout_with_only_a_refused_access_token_is_401(
    client: httpx.AsyncClient, clock: FrozenClock
) -> None:
    """Logout by an expired access token alone cannot identify the session: 401, and the
    session lives on (log out with the refresh token instead)."""
    await register(client)
    body = (await login(client, transport="body")).json()
    clock.advance(931)
    r = await client.post("/auth/logout", headers=bearer(body["access_token"]))
    assert r.status_code == 401 and r.json()["error"] == "invalid_token"
    r = await client.post("/auth/refresh", json={"refresh_token": body["refresh_token"]})
    assert r.status_code == 200


async def test_logout_all_revokes_every_session(client: httpx.AsyncClient) -> None:
    """logout-all revokes all of the caller's sessions and says how many."""
    await register(client)
    sessions = [(await login(client, transport="body")).json() for _ in range(3)]
    r = await client.post("/auth/logout-all", headers=bearer(sessions[0]["access_token"]))
    assert r.status_code == 200 and r.json() == {"revoked": 3}
    for s in sessions:
        r = await client.post("/auth/refresh", json={"refresh_token": s["refresh_token"]})
        assert r.status_code == 400


async def test_sessions_list_marks_the_current_one(client: httpx.AsyncClient) -> None:
    """The sessions list shows each device, with the caller's own session marked current."""
    await register(client)
    await client.post(
        "/auth/login",
        json={"username": "alice", "password": PASSWORD, "transport": "body"},
        headers={"User-Agent": "phone"},
    )
    mine = (await login(client, transport="body")).json()
    r = await client.get("/auth/sessions", headers=bearer(mine["access_token"]))
    assert r.status_code == 200
    sessions = r.json()["sessions"]
    assert len(sessions) == 2
    assert [s["current"] for s in sessions].count(True) == 1
    assert {s["device"]["user_agent"] for s in sessions} == {
        "phone",
        f"python-httpx/{httpx.__version__}",
    }
    for s in sessions:
        assert set(s) == {
            "sid",
            "client_id",
            "device",
            "created_at",
            "last_used_at",
            "expires_at",
            "current",
        }
        assert s["device"]["ip"] == "127.0.0.1"


async def test_delete_a_session_of_ones_own(client: httpx.AsyncClient) -> None:
    """DELETE /auth/sessions/{sid} revokes one of the caller's sessions (204)."""
    await register(client)
    other = (await login(client, transport="body")).json()
    mine = (await login(client, transport="body")).json()
    other_sid = (await client.get("/auth/me", headers=bearer(other["access_token"]))).json()["sid"]
    r = await client.delete(f"/auth/sessions/{other_sid}", headers=bearer(mine["access_token"]))
    assert r.status_code == 204
    r = await client.post("/auth/refresh", json={"refresh_token": other["refresh_token"]})
    assert r.status_code == 400
    r = await client.delete(f"/auth/sessions/{other_sid}", headers=bearer(mine["access_token"]))
    assert r.status_code == 404


async def test_cannot_delete_someone_elses_session(client: httpx.AsyncClient) -> None:
    """Another user's session id answers 404, exactly like one that does not exist."""
    await register(client, "alice")
    await register(client, "bob")
    alice = (await login(client, "alice", transport="body")).json()
    bob = (await login(client, "bob", transport="body")).json()
    bob_sid = (await client.get("/auth/me", headers=bearer(bob["access_token"]))).json()["sid"]
    r = await client.delete(f"/auth/sessions/{bob_sid}", headers=bearer(alice["access_token"]))
    assert r.status_code == 404 and r.json()["error"] == "not_found"
    r = await client.post("/auth/refresh", json={"refresh_token": bob["refresh_token"]})
    assert r.status_code == 200


async def test_deleting_the_current_session_clears_the_cookie(client: httpx.AsyncClient) -> None:
    """Revoking one's own current session from the list also deletes the refresh cookie."""
    await register(client)
    access = (await login(client)).json()["access_token"]
    sid = (await client.get("/auth/me", headers=bearer(access))).json()["sid"]
    r = await client.delete(f"/auth/sessions/{sid}", headers=bearer(access))
    assert r.status_code == 204
    assert COOKIE not in client.cookies


async def test_me_describes_the_caller(client: httpx.AsyncClient) -> None:
    """/auth/me answers sub, sid, client_id, scope and exp from the access token."""
    user_id = await register(client)
    access = (await login(client)).json()["access_token"]
    me = (await client.get("/auth/me", headers=bearer(access))).json()
    assert set(me) == {"sub", "sid", "client_id", "scope", "exp"}
    assert me["sub"] == user_id and isinstance(me["exp"], int)
