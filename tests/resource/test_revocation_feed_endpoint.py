"""``GET /oauth/revocations`` in-process: what it answers, and that a revocation wakes a
waiting long-poll (the store re-read is pushed out of reach so only the wake-up can)."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import httpx
import pytest

from keyfob import SessionManager, Settings
from keyfob.server import create_app, routes_revocations
from keyfob.testing import FrozenClock, MemoryStore

PASSWORD = "correct horse battery staple"


class Feed:
    def __init__(
        self,
        http: httpx.AsyncClient,
        auth: tuple[str, str],
        manager: SessionManager,
        clock: FrozenClock,
    ) -> None:
        self.http = http
        self.auth = auth
        self.manager = manager
        self.clock = clock

    async def get(self, **params: str) -> httpx.Response:
        return await self.http.get("/oauth/revocations", params=params, auth=self.auth)


@pytest.fixture
async def feed(settings: Settings, clock: FrozenClock) -> AsyncIterator[Feed]:
    app = create_app(settings, MemoryStore(), clock)
    async with app.router.lifespan_context(app):
        manager = app.state.manager
        _, secret = await manager.clients.register(
            client_id="api", name="api", auth_method="client_secret_basic"
        )
        assert secret is not None
        await manager.accounts.register("ann", PASSWORD)
        transport = httpx.ASGITransport(app)
        async with httpx.AsyncClient(transport=transport, base_url="https://testserver") as c:
            yield Feed(c, ("api", secret), manager, clock)


async def test_a_revocation_wakes_a_waiting_long_poll(
    feed: Feed, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(routes_revocations, "_STORE_POLL", 60.0)
    manager, clock = feed.manager, feed.clock
    pair = await manager.login("ann", PASSWORD)
    first = await feed.get()
    assert first.status_code == 200 and first.json()["revocations"] == []
    cursor = first.json()["cursor"]
    waiting = asyncio.create_task(feed.get(since=cursor, wait="20"))
    await asyncio.sleep(0.05)
    assert not waiting.done()  # nothing newer than the cursor: it waits
    clock.advance(1)
    assert await manager.logout(pair.refresh_token)
    answer = await asyncio.wait_for(waiting, 5)  # a hang guard: 20 s without the wake-up
    assert answer.status_code == 200
    body = answer.json()
    assert [r["sid"] for r in body["revocations"]] == [pair.session.sid]
    assert float(body["cursor"]) > float(cursor)
    # A first request (no cursor) catches up at once with what is still relevant.
    assert [r["sid"] for r in (await feed.get()).json()["revocations"]] == [pair.session.sid]


async def test_wait_zero_answers_at_once_and_old_revocations_age_out(feed: Feed) -> None:
    manager, clock = feed.manager, feed.clock
    pair = await manager.login("ann", PASSWORD)
    assert await manager.logout(pair.refresh_token)
    cursor = (await feed.get()).json()["cursor"]
    # Within the overlap window the revocation is sent again: harmless, and what catches
    # a revocation that committed after an earlier read.
    again = (await feed.get(since=cursor, wait="0")).json()
    assert [r["sid"] for r in again["revocations"]] == [pair.session.sid]
    clock.advance(manager.settings.access_ttl + manager.settings.leeway + 1)
    later = (await feed.get(since=cursor, wait="0")).json()
    assert later["revocations"] == []
