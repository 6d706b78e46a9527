"""Usernames per RFC 8265 through the Python API and HTTP: look-alike spellings reach one
account, refused names get a clear 400, and accounts stored before PRECIS still sign in."""

from __future__ import annotations

import secrets

import httpx
import pytest

from keyfob import AuthenticationFailed, SessionManager, UserError, UserExists
from keyfob.core.models import User
from keyfob.core.passwords import PasswordHasher
from keyfob.server import create_app
from keyfob.testing import FAST_SETTINGS, MemoryStore

from .conftest import PASSWORD


async def test_composed_and_decomposed_names_are_one_account(manager: SessionManager) -> None:
    """Registered in NFD, the account signs in with the NFC spelling, and vice versa."""
    user = await manager.register("Jose\u0301", PASSWORD)
    assert user.username == "Jos\u00e9"
    pair = await manager.login("jos\u00e9", PASSWORD)
    assert pair.session.user_id == user.id
    with pytest.raises(UserExists):
        await manager.register("JOS\u00c9", PASSWORD)


async def test_full_width_spelling_reaches_the_same_account(manager: SessionManager) -> None:
    """full-width ``ALICE`` cannot be registered beside ``alice``, and signs in as her."""
    alice = await manager.register("alice", PASSWORD)
    with pytest.raises(UserExists):
        await manager.register("\uff21\uff2c\uff29\uff23\uff25", PASSWORD)
    pair = await manager.login("\uff41\uff4c\uff49\uff43\uff45", PASSWORD)
    assert pair.session.user_id == alice.id


@pytest.mark.parametrize("name", ["ali\u200bce", "\ufeffalice", "ali\u202ece", "ali\u0085ce"])
async def test_invisible_characters_are_refused_at_registration(
    manager: SessionManager, name: str
) -> None:
    with pytest.raises(UserError, match="must not contain"):
        await manager.register(name, PASSWORD)


@pytest.mark.parametrize(
    "stored",
    ["Bob", "bob smith", "\uff42\uff4f\uff42", "bo\u200bb", "Zoe\u0308", "\U0001f600bob"],
)
async def test_accounts_stored_before_precis_still_sign_in(
    manager: SessionManager, stored: str
) -> None:
    """Names as the old code stored them (stripped, case kept, no PRECIS) still log in
    with what the owner types: the lookup tries the PRECIS key, then the old form."""
    user = User(
        id=secrets.token_urlsafe(12),
        username=stored,
        password_hash=PasswordHasher("cheapest").hash(PASSWORD),
        created_at=0.0,
    )
    await manager.store.create_user(user)
    pair = await manager.login(stored, PASSWORD)
    assert pair.session.user_id == user.id
    assert (await manager.get_user_by_name(stored.upper())) == user
    with pytest.raises(AuthenticationFailed):
        await manager.login(stored, "wrong password!")


async def test_http_registration_refuses_a_zero_width_name_with_a_clear_400() -> None:
    app = create_app(FAST_SETTINGS, MemoryStore())
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app)
        async with httpx.AsyncClient(transport=transport, base_url="https://testserver") as c:
            r = await c.post(
                "/auth/register", json={"username": "ad\u200bmin", "password": PASSWORD}
            )
    assert r.status_code == 400, r.text
    assert r.json() == {
        "error": "invalid_request",
        "error_description": "the username must not contain an invisible or formatting "
        "character: U+200B ZERO WIDTH SPACE",
    }
