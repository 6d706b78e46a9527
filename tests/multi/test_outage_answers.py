"""Every route of a real server process with its PostgreSQL stopped (spec §4): what needs
the store answers 503 JSON ``temporarily_unavailable`` with ``error_description`` and
``Retry-After``; what does not need it keeps answering; nothing answers 500; once
PostgreSQL is back, the same tokens work.
"""

from __future__ import annotations

import base64
import json
import time
from collections.abc import Iterator

import httpx
import pytest

from tests.server.uvicorn_process import UvicornProcess
from tests.services import PostgresServer

from .conftest import PASSWORD, fresh_database, sid_of
from .test_partition import assert_outage_answer

pytestmark = [pytest.mark.slow, pytest.mark.postgres, pytest.mark.shared_database]


@pytest.fixture(scope="module")
def pg() -> Iterator[PostgresServer]:
    """A PostgreSQL server of this module's own: the test stops it."""
    with PostgresServer() as server:
        yield server


@pytest.fixture(scope="module")
def server(
    pg: PostgresServer, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[UvicornProcess]:
    dsn = fresh_database(pg)
    env = {"KEYFOB_STORE_URL": f"{dsn}?connect_timeout=1&statement_timeout=1"}
    with UvicornProcess(tmp_path_factory.mktemp("outage"), env=env) as server:
        yield server


def unknown_kid(access_token: str) -> str:
    """The access token with its header's ``kid`` changed to one no instance knows (the
    signature no longer matters: an unknown kid makes the server reload its keys)."""
    header, payload, signature = access_token.split(".")
    fields = json.loads(base64.urlsafe_b64decode(header + "=" * (-len(header) % 4)))
    fields["kid"] = "no-such-key"
    forged = base64.urlsafe_b64encode(json.dumps(fields).encode()).rstrip(b"=").decode()
    return f"{forged}.{payload}.{signature}"


def test_every_route_answers_503_json_with_retry_after_or_works_while_the_store_is_down(
    server: UvicornProcess, pg: PostgresServer
) -> None:
    """With PostgreSQL stopped: register, login, refresh (JSON and OAuth), logout by
    refresh or access token, logout-all, the session list and a session's revocation
    answer 503 JSON with Retry-After; /auth/me with a known key, the JWKS, the metadata,
    the OpenAPI document and the demo page keep answering 200; a token naming an
    unknown key is 503 or 401, never 500. Once PostgreSQL is back the same tokens work."""
    with httpx.Client(base_url=server.url, timeout=15.0) as client:
        r = client.post("/auth/register", json={"username": "down", "password": PASSWORD})
        assert r.status_code == 201, r.text
        login = {"username": "down", "password": PASSWORD, "transport": "body"}
        tokens = [client.post("/auth/login", json=login).json() for _ in range(2)]
        refresh_token, access = tokens[0]["refresh_token"], tokens[0]["access_token"]
        other_sid = sid_of(tokens[1]["access_token"])
        bearer = {"Authorization": f"Bearer {access}"}

        pg.stop()
        try:
            needs_store = {
                "register": client.post(
                    "/auth/register", json={"username": "down2", "password": PASSWORD}
                ),
                "login": client.post("/auth/login", json=login),
                "refresh": client.post("/auth/refresh", json={"refresh_token": refresh_token}),
                "token": client.post(
                    "/oauth/token",
                    data={"grant_type": "refresh_token", "refresh_token": refresh_token},
                ),
                "logout (refresh token)": client.post(
                    "/auth/logout", json={"refresh_token": refresh_token}
                ),
                "logout (access token)": client.post("/auth/logout", headers=bearer),
                "logout-all": client.post("/auth/logout-all", headers=bearer),
                "sessions": client.get("/auth/sessions", headers=bearer),
                "revoke a session": client.delete(f"/auth/sessions/{other_sid}", headers=bearer),
            }
            for route, r in needs_store.items():
                assert r.status_code == 503, (route, r.status_code, r.text)
                assert_outage_answer(r)
            without_store = {
                "me": client.get("/auth/me", headers=bearer),
                "jwks": client.get("/.well-known/jwks.json"),
                "metadata": client.get("/.well-known/oauth-authorization-server"),
                "openapi": client.get("/openapi.json"),
                "demo page": client.get("/"),
            }
            assert {k: r.status_code for k, r in without_store.items()} == dict.fromkeys(
                without_store, 200
            )
            r = client.get("/auth/me", headers={"Authorization": f"Bearer {unknown_kid(access)}"})
            assert r.status_code in (401, 503), r.text
            if r.status_code == 503:
                assert_outage_answer(r)
        finally:
            pg.start()

        # Back: the very tokens the outage refused work, the store having changed nothing.
        deadline = time.monotonic() + 15.0
        while (
            r := client.post("/auth/refresh", json={"refresh_token": refresh_token})
        ).status_code == 503 and time.monotonic() < deadline:
            time.sleep(0.2)
        assert r.status_code == 200, r.text
        assert client.get("/auth/sessions", headers=bearer).status_code == 200
        r = client.delete(f"/auth/sessions/{other_sid}", headers=bearer)
        assert r.status_code == 204, r.text
