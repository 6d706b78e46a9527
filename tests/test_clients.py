"""OAuth clients through the Python API: the registry (``manager.clients``), client
authentication, refresh tokens bound to their client, scope narrowing, and the token
operations behind RFC 7009 revocation and RFC 7662 introspection."""

from __future__ import annotations

import pytest

from keyfob import (
    ClientExists,
    ClientMismatch,
    ClientNotFound,
    InvalidClient,
    InvalidClientMetadata,
    InvalidScope,
    SessionManager,
    SessionRevoked,
)
from keyfob.clients import CLIENT_CACHE_TTL
from keyfob.core.clients import FIRST_PARTY_CLIENT, ClientCredentials, hash_client_secret
from keyfob.testing import FrozenClock


async def confidential(manager: SessionManager, client_id: str = "conf") -> str:
    _, secret = await manager.clients.register(
        client_id=client_id,
        name=client_id,
        auth_method="client_secret_basic",
        scopes=["read", "write"],
    )
    assert secret is not None
    return secret


async def test_register_shows_the_secret_once_and_stores_its_hash(
    manager: SessionManager,
) -> None:
    """register() returns the secret; the store holds only its SHA-256."""
    secret = await confidential(manager)
    stored = await manager.store.get_client("conf")
    assert stored is not None and stored.secret_hash == hash_client_secret(secret)
    assert secret not in repr(stored)
    assert [c.client_id for c in await manager.clients.list()] == ["conf"]
    with pytest.raises(ClientExists):
        await confidential(manager)


async def test_public_clients_get_no_secret_and_a_random_id(manager: SessionManager) -> None:
    """A public client (auth method none) has no secret; an id is generated if not given."""
    client, secret = await manager.clients.register(name="SPA", auth_method="none")
    assert secret is None and len(client.client_id) >= 20
    assert await manager.clients.get(client.client_id) == client


async def test_scopes_outside_the_deployments_are_refused(manager: SessionManager) -> None:
    """With allowed_scopes (KEYFOB_SCOPES), a client may only be registered for those."""
    with pytest.raises(InvalidClientMetadata, match="admin"):
        await manager.clients.register(
            name="x", auth_method="none", scopes=["read", "admin"], allowed_scopes=["read"]
        )


async def test_the_first_party_client_is_built_in(manager: SessionManager) -> None:
    """get('keyfob') answers the built-in client; it cannot be removed or re-registered."""
    assert await manager.clients.get("keyfob") == FIRST_PARTY_CLIENT
    assert await manager.clients.list() == []
    with pytest.raises(InvalidClientMetadata, match="built in"):
        await manager.clients.remove("keyfob")
    with pytest.raises(InvalidClientMetadata, match="built in"):
        await manager.clients.register(client_id="keyfob", name="x", auth_method="none")


async def test_rotate_secret(manager: SessionManager) -> None:
    """A new secret replaces the old; unknown and secretless clients are refused."""
    old = await confidential(manager)
    new = await manager.clients.rotate_secret("conf")
    assert new != old
    creds = ClientCredentials("client_secret_basic", "conf", secret=new)
    assert (await manager.authenticate_client(creds)).client_id == "conf"
    with pytest.raises(InvalidClient):
        await manager.authenticate_client(
            ClientCredentials("client_secret_basic", "conf", secret=old)
        )
    with pytest.raises(ClientNotFound):
        await manager.clients.rotate_secret("nobody")
    await manager.clients.register(client_id="spa", name="spa", auth_method="none")
    with pytest.raises(InvalidClientMetadata, match="no secret"):
        await manager.clients.rotate_secret("spa")


async def test_authentication_names_the_client_or_refuses(manager: SessionManager) -> None:
    """No client named is the first-party client; every mismatch is InvalidClient."""
    secret = await confidential(manager)
    assert await manager.authenticate_client(ClientCredentials("none", None)) == FIRST_PARTY_CLIENT
    refused = [
        ClientCredentials("none", "conf"),
        ClientCredentials("client_secret_post", "conf", secret=secret),
        ClientCredentials("client_secret_basic", "conf", secret=secret + "x"),
        ClientCredentials("client_secret_basic", "nobody", secret=secret),
        ClientCredentials("client_secret_basic", None, secret=secret),
        ClientCredentials("client_secret_basic", "keyfob", secret="x"),
    ]
    for creds in refused:
        with pytest.raises(InvalidClient):
            await manager.authenticate_client(creds)


async def test_refresh_bound_to_another_client_changes_nothing(
    manager: SessionManager, clock: FrozenClock
) -> None:
    """ClientMismatch, the session untouched: even the previous token within grace is
    not handed to another client, and no reuse is detected."""
    pair = await manager.issue("u1", client_id="conf", scope="read")
    second = await manager.refresh(pair.refresh_token, client_id="conf")
    clock.advance(1)
    with pytest.raises(ClientMismatch):
        await manager.refresh(pair.refresh_token, client_id="other")
    with pytest.raises(ClientMismatch):
        await manager.refresh(second.refresh_token, client_id="keyfob")
    session = await manager.store.get_session(pair.session.sid)
    assert session is not None and session.counter == 1 and session.revoked_at is None
    again = await manager.refresh(pair.refresh_token, client_id="conf")
    assert again.refresh_token == second.refresh_token, "the grace successor, for its client"


async def test_refresh_without_a_client_is_not_bound(manager: SessionManager) -> None:
    """The Python API may refresh any session (the application is trusted)."""
    pair = await manager.issue("u1", client_id="conf")
    assert (await manager.refresh(pair.refresh_token)).session.counter == 1


async def test_scope_narrows_the_access_token_only(manager: SessionManager) -> None:
    """A narrower scope goes into that access token; a wider one is InvalidScope and
    nothing rotates; the session keeps its scope."""
    pair = await manager.issue("u1", client_id="conf", scope="read write")
    narrowed = await manager.refresh(pair.refresh_token, client_id="conf", scope="write")
    assert narrowed.scope == "write"
    assert manager.verify_access_token(narrowed.access_token).scopes == {"write"}
    with pytest.raises(InvalidScope):
        await manager.refresh(narrowed.refresh_token, client_id="conf", scope="write admin")
    full = await manager.refresh(narrowed.refresh_token, client_id="conf")
    assert full.scope == "read write" and full.session.counter == 2


async def test_revoke_token_only_for_its_client(manager: SessionManager) -> None:
    """revoke_token() ends a session for its own client only; junk is ignored."""
    await confidential(manager)
    conf = await manager.clients.get("conf")
    assert conf is not None
    pair = await manager.issue("u1", client_id="conf")
    assert not await manager.revoke_token(pair.refresh_token.value, client=FIRST_PARTY_CLIENT)
    assert not await manager.revoke_token("kfrt_junk", client=conf)
    assert not await manager.revoke_token("junk", client=conf)
    assert await manager.revoke_token(pair.access_token, client=conf)
    assert not await manager.revoke_token(pair.refresh_token.value, client=conf), "once"
    with pytest.raises(SessionRevoked):
        await manager.refresh(pair.refresh_token, client_id="conf")


async def test_introspect(manager: SessionManager, clock: FrozenClock) -> None:
    """Active while current and live; then {"active": false}, alike for every reason."""
    pair = await manager.issue("u1", client_id="conf", scope="read")
    info = await manager.introspect(pair.refresh_token.value)
    assert info["active"] is True and info["client_id"] == "conf" and info["scope"] == "read"
    access = await manager.introspect(pair.access_token)
    assert access["active"] is True and access["sid"] == pair.session.sid
    await manager.refresh(pair.refresh_token)
    assert await manager.introspect(pair.refresh_token.value) == {"active": False}
    clock.advance(manager.settings.access_ttl + manager.settings.leeway + 1)
    assert await manager.introspect(pair.access_token) == {"active": False}


async def test_registrations_are_reused_briefly_by_each_process(
    manager: SessionManager, clock: FrozenClock
) -> None:
    """A client read from the store is reused for CLIENT_CACHE_TTL: a new secret made by
    another process (the CLI) counts within that; one made through this manager at once."""
    old = await confidential(manager)
    basic = ClientCredentials("client_secret_basic", "conf", secret=old)
    assert (await manager.authenticate_client(basic)).client_id == "conf"
    other = SessionManager(manager.settings, manager.store, clock=clock)  # another process
    new = await other.clients.rotate_secret("conf")
    assert (await manager.authenticate_client(basic)).client_id == "conf", "still cached"
    clock.advance(CLIENT_CACHE_TTL)
    with pytest.raises(InvalidClient):
        await manager.authenticate_client(basic)
    newest = await manager.clients.rotate_secret("conf")
    with pytest.raises(InvalidClient):
        await manager.authenticate_client(
            ClientCredentials("client_secret_basic", "conf", secret=new)
        )
    assert await manager.authenticate_client(
        ClientCredentials("client_secret_basic", "conf", secret=newest)
    )
    assert await manager.clients.remove("conf")
    with pytest.raises(InvalidClient):
        await manager.authenticate_client(
            ClientCredentials("client_secret_basic", "conf", secret=newest)
        )


async def test_unknown_clients_are_not_cached(manager: SessionManager) -> None:
    """A client registered after a failed lookup is found at once."""
    assert await manager.clients.get("late") is None
    await confidential(manager, "late")
    assert await manager.clients.get("late") is not None
