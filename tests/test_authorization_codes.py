"""Authorization codes through the Python API (RFC 6749 §4.1, RFC 7636): made by
``create_authorization_code``, exchanged once by ``exchange_authorization_code``."""

from __future__ import annotations

import asyncio
import dataclasses
from pathlib import Path

import pytest

from keyfob import (
    AccessTokenRevoked,
    DeviceInfo,
    EventKind,
    InvalidClient,
    InvalidGrant,
    InvalidRequest,
    InvalidScope,
    ReuseRule,
    RevokeReason,
    SecurityEvent,
    SessionManager,
    SessionRevoked,
    UnauthorizedClient,
)
from keyfob.core.authorization_codes import (
    CODE_RETENTION,
    CODE_TTL,
    CodeExchange,
    code_hash,
    s256_challenge,
)
from keyfob.core.clients import Client
from keyfob.store.sqlite import SQLiteStore
from keyfob.testing import FAST_SETTINGS, FrozenClock

REDIRECT = "https://app.example/cb"
VERIFIER = "dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXk"
CHALLENGE = s256_challenge(VERIFIER)


async def register(
    manager: SessionManager,
    client_id: str = "app",
    *,
    auth_method: str = "none",
    require_pkce: bool = True,
    grant_types: tuple[str, ...] = ("authorization_code", "refresh_token"),
) -> Client:
    client, _ = await manager.clients.register(
        client_id=client_id,
        name=client_id,
        auth_method=auth_method,  # type: ignore[arg-type]
        redirect_uris=[REDIRECT, "http://127.0.0.1/cb"],
        grant_types=grant_types,
        scopes=["openid", "read", "write"],
        require_pkce=require_pkce,
    )
    return client


async def make_code(manager: SessionManager, client: Client, **changes: object) -> str:
    args: dict[str, object] = {
        "user_id": "u1",
        "client_id": client.client_id,
        "redirect_uri": REDIRECT,
        "scope": "openid read",
        "code_challenge": CHALLENGE,
        "nonce": "n-0S6_WzA2Mj",
        "auth_time": manager.clock.now() - 5,
    }
    args.update(changes)
    return await manager.create_authorization_code(**args)  # type: ignore[arg-type]


async def test_a_code_is_exchanged_for_a_session_of_its_client(
    manager: SessionManager, clock: FrozenClock
) -> None:
    """The exchange starts a session for the code's user, client and scope, and hands
    back the nonce and auth_time the id_token needs."""
    client = await register(manager)
    code = await make_code(manager, client)
    assert code.startswith("kfac_") and len(code) == 48
    clock.advance(CODE_TTL - 1)
    result = await manager.exchange_authorization_code(
        code,
        client=client,
        redirect_uri=REDIRECT,
        code_verifier=VERIFIER,
        device=DeviceInfo(user_agent="App/1.0", ip="203.0.113.7"),
    )
    session = result.pair.session
    assert (session.user_id, session.client_id, session.scope) == ("u1", "app", "openid read")
    assert session.device == DeviceInfo(user_agent="App/1.0", ip="203.0.113.7")
    assert result.nonce == "n-0S6_WzA2Mj"
    assert result.auth_time == clock.now() - CODE_TTL + 1 - 5
    principal = manager.verify_access_token(result.pair.access_token)
    assert principal.client_id == "app" and principal.scopes == {"openid", "read"}
    refreshed = await manager.refresh(result.pair.refresh_token, client_id="app")
    assert refreshed.session.sid == session.sid


async def test_the_store_keeps_only_the_hash_of_a_code(manager: SessionManager) -> None:
    """The code's text is nowhere in the stored record; its SHA-256 names it."""
    client = await register(manager)
    code = await make_code(manager, client)
    digest = code_hash(code)
    assert digest is not None
    stored = await manager.store.get_authorization_code(digest)
    assert stored is not None and stored.used_at is None
    assert code not in repr(stored) and code.encode() not in digest


async def test_a_confidential_client_without_pkce(manager: SessionManager) -> None:
    """A confidential client registered with require_pkce False may use a code made
    without a challenge; a verifier sent anyway is a PKCE downgrade and refused."""
    client = await register(
        manager, "backend", auth_method="client_secret_basic", require_pkce=False
    )
    code = await make_code(manager, client, code_challenge=None)
    result = await manager.exchange_authorization_code(
        code, client=client, redirect_uri=REDIRECT, code_verifier=None
    )
    assert result.pair.session.client_id == "backend"
    code = await make_code(manager, client, code_challenge=None)
    with pytest.raises(InvalidGrant, match="no PKCE"):
        await manager.exchange_authorization_code(
            code, client=client, redirect_uri=REDIRECT, code_verifier=VERIFIER
        )


@pytest.mark.parametrize(
    ("changes", "error", "message"),
    [
        ({"client_id": "nobody"}, InvalidClient, "unknown client"),
        ({"redirect_uri": "https://app.example/cb/../evil"}, InvalidRequest, "redirect_uri"),
        ({"redirect_uri": "https://evil.example/cb"}, InvalidRequest, "redirect_uri"),
        ({"scope": "read admin"}, InvalidScope, "admin"),
        ({"scope": 'read "x"'}, InvalidScope, "malformed"),
        ({"code_challenge": None}, InvalidRequest, "PKCE"),
        ({"code_challenge": VERIFIER + "x"}, InvalidRequest, "43 base64url"),
        ({"code_challenge": "a" * 42 + "="}, InvalidRequest, "43 base64url"),
        ({"nonce": "x" * 513}, InvalidRequest, "nonce"),
        ({"nonce": ""}, InvalidRequest, "nonce"),
        ({"nonce": "bad\nnonce"}, InvalidRequest, "nonce"),
    ],
)
async def test_a_code_is_made_only_for_what_the_registration_allows(
    manager: SessionManager, changes: dict[str, object], error: type[Exception], message: str
) -> None:
    """create_authorization_code checks the request against the client once more."""
    client = await register(manager)
    with pytest.raises(error, match=message):
        await make_code(manager, client, **changes)


async def test_a_client_not_registered_for_the_grant_gets_no_code(
    manager: SessionManager,
) -> None:
    """A refresh-only client (and the built-in first-party one) cannot get codes."""
    client = await register(manager, "refresh-only", grant_types=("refresh_token",))
    with pytest.raises(UnauthorizedClient):
        await make_code(manager, client)
    with pytest.raises(UnauthorizedClient):
        await make_code(manager, await manager.clients.get("keyfob"))  # type: ignore[arg-type]


async def test_a_loopback_redirect_with_any_port_is_bound_exactly(
    manager: SessionManager,
) -> None:
    """RFC 8252 §7.3: the code may be made for any port of a loopback redirect, and the
    exchange must then name that same port."""
    client = await register(manager)
    uri = "http://127.0.0.1:51004/cb"
    code = await make_code(manager, client, redirect_uri=uri)
    with pytest.raises(InvalidGrant, match="redirect_uri differs"):
        await manager.exchange_authorization_code(
            code, client=client, redirect_uri="http://127.0.0.1:51005/cb", code_verifier=VERIFIER
        )
    code = await make_code(manager, client, redirect_uri=uri)
    result = await manager.exchange_authorization_code(
        code, client=client, redirect_uri=uri, code_verifier=VERIFIER
    )
    assert result.pair.session.client_id == "app"


async def test_a_second_presentation_revokes_the_session(manager: SessionManager) -> None:
    """RFC 6749 §4.1.2: the code's second use is refused and the session issued from the
    first is revoked: its refresh token and access token stop working; the event log
    says so."""
    client = await register(manager)
    code = await make_code(manager, client)
    first = await manager.exchange_authorization_code(
        code, client=client, redirect_uri=REDIRECT, code_verifier=VERIFIER
    )
    heard: list[SecurityEvent] = []
    manager.on_reuse = heard.append
    with pytest.raises(InvalidGrant, match="already used"):
        await manager.exchange_authorization_code(
            code, client=client, redirect_uri=REDIRECT, code_verifier=VERIFIER
        )
    sid = first.pair.session.sid
    with pytest.raises(SessionRevoked):
        await manager.refresh(first.pair.refresh_token, client_id="app")
    with pytest.raises(AccessTokenRevoked):
        manager.verify_access_token(first.pair.access_token)
    stored = await manager.store.get_session(sid)
    assert stored is not None and stored.revoked_reason == RevokeReason.CODE_REUSED
    [event] = await manager.events(kind=EventKind.REUSE_DETECTED)
    assert event.sid == sid and event.user_id == "u1"
    assert f"rule={ReuseRule.AUTHORIZATION_CODE.value}" in event.detail
    assert "revoked=1" in event.detail
    assert heard == [dataclasses.replace(event, id=None)]


@pytest.mark.parametrize(
    ("presented", "message"),
    [
        ({"redirect_uri": None}, "redirect_uri is required"),
        ({"redirect_uri": REDIRECT + "/"}, "redirect_uri differs"),
        ({"redirect_uri": REDIRECT.upper()}, "redirect_uri differs"),
        ({"code_verifier": None}, "code_verifier is required"),
        ({"code_verifier": VERIFIER[:42]}, "43-128"),
        ({"code_verifier": "a" * 129}, "43-128"),
        ({"code_verifier": VERIFIER[:-1] + "+"}, "43-128"),
        ({"code_verifier": CHALLENGE}, "does not match"),
        ({"code_verifier": "A" * 43}, "does not match"),
    ],
)
async def test_a_failed_exchange_spends_the_code(
    manager: SessionManager, presented: dict[str, object], message: str
) -> None:
    """A request that does not match its code is invalid_grant, and the code cannot be
    used afterwards even with the right values (RFC 9700 §2.1.1); no session is left."""
    client = await register(manager)
    code = await make_code(manager, client)
    request: dict[str, object] = {"redirect_uri": REDIRECT, "code_verifier": VERIFIER}
    request.update(presented)
    with pytest.raises(InvalidGrant, match=message):
        await manager.exchange_authorization_code(code, client=client, **request)  # type: ignore[arg-type]
    with pytest.raises(InvalidGrant, match="already used"):
        await manager.exchange_authorization_code(
            code, client=client, redirect_uri=REDIRECT, code_verifier=VERIFIER
        )
    assert await manager.store.count_sessions() == 0


async def test_a_code_of_another_client_is_refused_and_spent(manager: SessionManager) -> None:
    """A client presenting another client's code gets invalid_grant; the code is spent."""
    client = await register(manager)
    thief = await register(manager, "thief")
    code = await make_code(manager, client)
    with pytest.raises(InvalidGrant, match="another client"):
        await manager.exchange_authorization_code(
            code, client=thief, redirect_uri=REDIRECT, code_verifier=VERIFIER
        )
    with pytest.raises(InvalidGrant, match="already used"):
        await manager.exchange_authorization_code(
            code, client=client, redirect_uri=REDIRECT, code_verifier=VERIFIER
        )


async def test_a_code_expires_after_a_minute(manager: SessionManager, clock: FrozenClock) -> None:
    """At CODE_TTL after it was made, a code is refused as expired."""
    client = await register(manager)
    code = await make_code(manager, client)
    clock.advance(CODE_TTL)
    with pytest.raises(InvalidGrant, match="expired"):
        await manager.exchange_authorization_code(
            code, client=client, redirect_uri=REDIRECT, code_verifier=VERIFIER
        )


@pytest.mark.parametrize(
    "code",
    ["", "kfac_", "kfac_" + "A" * 42, "kfac_" + "A" * 44, "kfac_" + "A" * 42 + "=", "x" * 48],
)
async def test_malformed_and_unknown_codes(manager: SessionManager, code: str) -> None:
    """A value not shaped like a code, or one never issued, is invalid_grant."""
    client = await register(manager)
    with pytest.raises(InvalidGrant, match="malformed"):
        await manager.exchange_authorization_code(
            code, client=client, redirect_uri=REDIRECT, code_verifier=VERIFIER
        )
    with pytest.raises(InvalidGrant, match="unknown"):
        await manager.exchange_authorization_code(
            "kfac_" + "A" * 43, client=client, redirect_uri=REDIRECT, code_verifier=VERIFIER
        )


async def test_concurrent_exchanges_leave_no_live_session(manager: SessionManager) -> None:
    """Of several exchanges of one code at once, at most one may return tokens, and
    since the code was presented more than once, no session issued from it stays live."""
    client = await register(manager)
    code = await make_code(manager, client)
    results = await asyncio.gather(
        *(
            manager.exchange_authorization_code(
                code, client=client, redirect_uri=REDIRECT, code_verifier=VERIFIER
            )
            for _ in range(5)
        ),
        return_exceptions=True,
    )
    assert sum(not isinstance(r, InvalidGrant) for r in results) <= 1
    assert await manager.list_sessions("u1") == []


async def test_purge_forgets_codes_after_their_retention(
    manager: SessionManager, clock: FrozenClock
) -> None:
    """manager.purge() deletes codes expired more than CODE_RETENTION ago, with the
    sessions; until then a replay is still recognised as reuse."""
    client = await register(manager)
    code = await make_code(manager, client)
    digest = code_hash(code)
    assert digest is not None
    clock.advance(CODE_TTL + CODE_RETENTION - 1)
    assert await manager.purge() == 0
    assert await manager.store.get_authorization_code(digest) is not None
    clock.advance(2)
    assert await manager.purge() == 1
    assert await manager.store.get_authorization_code(digest) is None


async def test_removing_a_client_removes_its_codes(manager: SessionManager) -> None:
    """Codes go with their client: after removal, nothing of it can be exchanged."""
    client = await register(manager)
    code = await make_code(manager, client)
    await manager.clients.remove("app")
    with pytest.raises(InvalidGrant, match="unknown"):
        await manager.exchange_authorization_code(
            code, client=client, redirect_uri=REDIRECT, code_verifier=VERIFIER
        )


async def test_concurrent_exchanges_across_a_shared_database(tmp_path: Path) -> None:
    """The same race on SQLite, where the exchanges interleave at every store call: one
    conditional update picks the winner, and each loser revokes the session it made and
    the winner's, so nothing issued from the twice-presented code stays live."""
    clock = FrozenClock()
    async with SessionManager(
        FAST_SETTINGS, SQLiteStore(tmp_path / "keyfob.db"), clock=clock
    ) as manager:
        client = await register(manager)
        code = await make_code(manager, client)
        results = await asyncio.gather(
            *(
                manager.exchange_authorization_code(
                    code, client=client, redirect_uri=REDIRECT, code_verifier=VERIFIER
                )
                for _ in range(4)
            ),
            return_exceptions=True,
        )
        assert all(isinstance(r, (InvalidGrant, CodeExchange)) for r in results), results
        assert sum(isinstance(r, CodeExchange) for r in results) <= 1
        assert await manager.list_sessions("u1") == []
        events = await manager.events(kind=EventKind.REUSE_DETECTED)
        assert len(events) == sum(isinstance(r, InvalidGrant) for r in results)


async def test_a_client_removed_by_another_process_gets_no_code(manager: SessionManager) -> None:
    """A client removed from the store behind this process's cache of registrations is
    invalid_client, not a store error."""
    client = await register(manager)
    assert await manager.clients.get("app") == client  # now cached
    assert await manager.store.delete_client("app")
    with pytest.raises(InvalidClient, match="not registered"):
        await make_code(manager, client)
