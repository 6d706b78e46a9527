"""Building the app: create_app, the uvicorn factory, and the public test helper."""

from __future__ import annotations

import subprocess
import sys

import pytest

from keyfob import SessionManager
from keyfob.server import app_from_env
from keyfob.testing import FrozenClock, make_test_app

from .conftest import PASSWORD, login, register, running


async def test_make_test_app_runs_the_whole_api() -> None:
    """keyfob.testing.make_test_app gives a working server on a memory store."""
    clock = FrozenClock()
    app = make_test_app(clock=clock)
    assert isinstance(app.state.manager, SessionManager)
    async with running(app) as client:
        await register(client)
        r = await login(client)
        assert r.json()["token_type"] == "Bearer"


def test_importing_the_test_helpers_does_not_import_starlette() -> None:
    """import keyfob.testing stays light: the server is imported only by make_test_app."""
    code = "import sys, keyfob.testing; print('starlette' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], check=True, capture_output=True, text=True)
    assert out.stdout.strip() == "False"


async def test_app_from_env_reads_keyfob_variables(monkeypatch: pytest.MonkeyPatch) -> None:
    """The uvicorn factory builds the app from KEYFOB_* variables."""
    monkeypatch.setenv("KEYFOB_STORE_URL", "memory://")
    monkeypatch.setenv("KEYFOB_ISSUER", "https://auth.example.com")
    monkeypatch.setenv("KEYFOB_PASSWORD_PROFILE", "cheapest")
    monkeypatch.setenv("KEYFOB_ACCESS_TTL", "5m")
    app = app_from_env()
    async with running(app, "https://auth.example.com") as client:
        meta = (await client.get("/.well-known/oauth-authorization-server")).json()
        assert meta["issuer"] == "https://auth.example.com"
        await client.post("/auth/register", json={"username": "alice", "password": PASSWORD})
        r = await client.post(
            "/auth/login", json={"username": "alice", "password": PASSWORD, "transport": "body"}
        )
        assert r.json()["expires_in"] == 300
