"""CSRF tokens and login tickets of the authorization page (keyfob.core.authorization_forms):
each is bound to what it claims and worth nothing elsewhere."""

from __future__ import annotations

import dataclasses

import pytest

from keyfob.core.authorization_forms import (
    TICKET_LIFETIME,
    FormKeys,
    LoginTicket,
    is_browser_id,
    new_browser_id,
)
from keyfob.core.authorization_requests import AuthorizationRequest

KEYS = FormKeys([b"secret-one"])
REQUEST = AuthorizationRequest(
    client_id="app",
    redirect_uri="https://app.example/cb",
    scopes=("openid", "read"),
    state="xyz",
    code_challenge="E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM",
    nonce="n",
)
TICKET = LoginTicket(user_id="user-1", auth_time=1000.5)
BROWSER = new_browser_id()


def test_browser_ids_are_fresh_and_recognised() -> None:
    assert new_browser_id() != BROWSER
    assert is_browser_id(BROWSER)
    for bad in ("", BROWSER + "A", BROWSER[:-1], BROWSER[:-1] + ".", "ü" * 22):
        assert not is_browser_id(bad)


def test_a_csrf_token_is_the_browser_s_own() -> None:
    token = KEYS.csrf_token(BROWSER)
    assert KEYS.csrf_valid(BROWSER, token)
    assert not KEYS.csrf_valid(new_browser_id(), token)
    assert not KEYS.csrf_valid(BROWSER, "")
    assert not KEYS.csrf_valid(BROWSER, token[:-1])
    assert not KEYS.csrf_valid(BROWSER, token[:-1] + "é")
    assert not FormKeys([b"another secret"]).csrf_valid(BROWSER, token)


def test_csrf_tokens_survive_a_secret_rotation() -> None:
    token = KEYS.csrf_token(BROWSER)
    assert FormKeys([b"secret-two", b"secret-one"]).csrf_valid(BROWSER, token)


def mint(now: float = 2000.0, keys: FormKeys = KEYS) -> str:
    return keys.mint_ticket(TICKET, browser_id=BROWSER, request=REQUEST, now=now)


def test_a_ticket_opens_in_its_browser_for_its_request_until_it_expires() -> None:
    value = mint()
    assert KEYS.open_ticket(value, browser_id=BROWSER, request=REQUEST, now=2000.0) == TICKET
    last = 2000.0 + TICKET_LIFETIME
    assert KEYS.open_ticket(value, browser_id=BROWSER, request=REQUEST, now=last - 0.001)
    assert KEYS.open_ticket(value, browser_id=BROWSER, request=REQUEST, now=last) is None


@pytest.mark.parametrize(
    "change",
    [
        {"client_id": "other"},
        {"redirect_uri": "https://app.example/cb2"},
        {"scopes": ("openid", "read", "write")},
        {"scopes": ("openid",)},
        {"state": "abc"},
        {"state": None},
        {"code_challenge": "x" * 43},
        {"code_challenge": None},
        {"nonce": "m"},
        {"nonce": None},
    ],
)
def test_a_ticket_is_worth_nothing_for_another_request(change: dict[str, object]) -> None:
    other = dataclasses.replace(REQUEST, **change)  # type: ignore[arg-type]
    assert KEYS.open_ticket(mint(), browser_id=BROWSER, request=other, now=2000.0) is None


def test_a_ticket_is_worth_nothing_elsewhere_or_altered() -> None:
    value = mint()
    assert KEYS.open_ticket(value, browser_id=new_browser_id(), request=REQUEST, now=2000) is None
    assert (
        FormKeys([b"another secret"]).open_ticket(
            value, browser_id=BROWSER, request=REQUEST, now=2000
        )
        is None
    )
    payload, _, mac = value.partition(".")
    forged = KEYS.mint_ticket(
        LoginTicket(user_id="admin", auth_time=1000.5), browser_id=BROWSER, request=REQUEST, now=0
    ).partition(".")[0]
    for bad in (f"{forged}.{mac}", payload, f"{payload}.", "", "." * 2000, value + "é"):
        assert KEYS.open_ticket(bad, browser_id=BROWSER, request=REQUEST, now=2000) is None


def test_tickets_survive_a_secret_rotation() -> None:
    rotated = FormKeys([b"secret-two", b"secret-one"])
    assert rotated.open_ticket(mint(), browser_id=BROWSER, request=REQUEST, now=2000) == TICKET
    assert (
        KEYS.open_ticket(mint(keys=rotated), browser_id=BROWSER, request=REQUEST, now=2000) is None
    )


def test_the_csrf_token_cannot_stand_in_for_a_ticket() -> None:
    token = KEYS.csrf_token(BROWSER)
    assert KEYS.open_ticket(token, browser_id=BROWSER, request=REQUEST, now=2000) is None


def test_form_keys_need_a_secret() -> None:
    with pytest.raises(ValueError, match="at least one"):
        FormKeys([])
