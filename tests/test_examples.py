"""The examples work as their docstrings say."""

from __future__ import annotations

import importlib.util
from collections.abc import AsyncIterator
from pathlib import Path
from types import ModuleType

import httpx
import pytest

from keyfob.testing import FAST_SETTINGS, FrozenClock, MemoryStore

from .conftest import PASSWORD

EXAMPLES = Path(__file__).resolve().parent.parent / "examples"
CSRF = {"X-Keyfob-CSRF": "1"}


def load_example(name: str) -> ModuleType:
    spec = importlib.util.spec_from_file_location(f"examples_{name}", EXAMPLES / f"{name}.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture
async def notes_client(clock: FrozenClock) -> AsyncIterator[httpx.AsyncClient]:
    app = load_example("fastapi_app").build_app(FAST_SETTINGS, MemoryStore(), clock)
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app)
        async with httpx.AsyncClient(transport=transport, base_url="https://testserver") as c:
            yield c


async def test_fastapi_example_protects_its_routes(notes_client: httpx.AsyncClient) -> None:
    """The notes app: public health, notes behind a session, admin behind a scope."""
    c = notes_client
    assert (await c.get("/health")).json() == {"status": "ok"}
    assert (await c.get("/notes")).status_code == 401

    await c.post("/auth/register", json={"username": "alice", "password": PASSWORD})
    login = await c.post(
        "/auth/login", json={"username": "alice", "password": PASSWORD, "transport": "body"}
    )
    tokens = login.json()
    auth = {"Authorization": f"Bearer {tokens['access_token']}"}

    created = await c.post("/notes", json={"text": "buy milk"}, headers=auth)
    assert created.status_code == 201
    assert (await c.get("/notes", headers=auth)).json() == [{"id": 1, "text": "buy milk"}]
    assert (await c.post("/notes", json={"text": ""}, headers=auth)).status_code == 422

    admin = await c.get("/admin/stats", headers=auth)
    assert admin.status_code == 403
    assert admin.json()["error"] == "insufficient_scope"

    # The refresh token from the body rotates through the same app.
    refreshed = await c.post("/auth/refresh", json={"refresh_token": tokens["refresh_token"]})
    assert refreshed.status_code == 200
    new_auth = {"Authorization": f"Bearer {refreshed.json()['access_token']}"}
    assert len((await c.get("/notes", headers=new_auth)).json()) == 1


async def test_fastapi_example_notes_are_per_user(notes_client: httpx.AsyncClient) -> None:
    """Each user sees only their own notes."""
    c = notes_client
    headers = {}
    for name in ("alice", "bob"):
        await c.post("/auth/register", json={"username": name, "password": PASSWORD})
        res = await c.post(
            "/auth/login", json={"username": name, "password": PASSWORD, "transport": "body"}
        )
        headers[name] = {"Authorization": f"Bearer {res.json()['access_token']}"}
    await c.post("/notes", json={"text": "alice's"}, headers=headers["alice"])
    assert (await c.get("/notes", headers=headers["bob"])).json() == []
