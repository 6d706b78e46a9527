"""Interop: requests-oauthlib (on oauthlib) as a native app uses it, a public client with
PKCE S256 and a loopback redirect on any port (RFC 8252 §7.3), against a real
``keyfob serve``; the person signs in and consents in real Chromium.

requests-oauthlib makes the authorization URL with its own PKCE verifier (43 characters,
RFC 7636's minimum), exchanges the code, refreshes an expired access token on its own
(``auto_refresh_url``) and explicitly; it has no revocation helper, so the app revokes
with a plain RFC 7009 POST. No keyfob code is used on the client's side.
"""

from __future__ import annotations

import time
from typing import Any

import pytest
import requests
from oauthlib.oauth2 import InvalidGrantError
from requests_oauthlib import OAuth2Session

from .conftest import Keyfob, Loopback, query, sign_in

pytestmark = [pytest.mark.browser, pytest.mark.slow]


@pytest.fixture(autouse=True)
def loopback_http(monkeypatch: pytest.MonkeyPatch) -> None:
    """oauthlib refuses http:// endpoints unless told otherwise; the test server listens
    on plain HTTP on 127.0.0.1 only. Never set this against a non-local server."""
    monkeypatch.setenv("OAUTHLIB_INSECURE_TRANSPORT", "1")


def test_requests_oauthlib_public_client(
    keyfob: Keyfob, access_ttl: int, browser: Any, loopback: Loopback
) -> None:
    """Code + PKCE, automatic and explicit refresh, then revocation by a plain POST."""
    metadata = keyfob.metadata()
    # A native app registers its loopback redirect without a port: any port matches.
    client_id, secret = keyfob.add_client(
        "Native notes", "--auth-method", "none",
        "--redirect-uri", "http://127.0.0.1/callback", "--scope", "read write",
    )  # fmt: skip
    assert secret is None, "a public client has no secret"
    updates: list[dict[str, Any]] = []
    session = OAuth2Session(
        client_id,
        redirect_uri=loopback.redirect_uri,
        scope=["read"],
        pkce="S256",
        auto_refresh_url=metadata["token_endpoint"],
        auto_refresh_kwargs={"client_id": client_id},  # a public client names itself
        token_updater=updates.append,
    )
    with session:
        url, state = session.authorization_url(metadata["authorization_endpoint"])
        sent = query(url)
        assert sent["code_challenge_method"] == "S256" and sent["code_challenge"]
        callback = sign_in(browser, loopback, url, consent=True)
        received = query(callback)
        assert received["state"] == state and received["iss"] == metadata["issuer"]

        # oauthlib checks the state; the body carries client_id and the code verifier.
        token = session.fetch_token(
            metadata["token_endpoint"], authorization_response=callback, include_client_id=True
        )
        assert token["scope"] == ["read"]
        assert token["expires_in"] == access_ttl
        first_refresh = token["refresh_token"]

        time.sleep(access_ttl + 0.5)
        me = session.get(keyfob.issuer + "/auth/me", timeout=10)
        assert me.status_code == 200, me.text
        assert me.json()["client_id"] == client_id
        assert len(updates) == 1, "requests-oauthlib refreshed the expired token itself"
        assert updates[0]["refresh_token"] != first_refresh

        explicit = session.refresh_token(metadata["token_endpoint"], client_id=client_id)
        assert explicit["refresh_token"] not in (first_refresh, updates[0]["refresh_token"])
        assert explicit["scope"] == ["read"]

        # RFC 7009 §2.1: a public client identifies itself with client_id in the body.
        revoked = requests.post(
            metadata["revocation_endpoint"],
            data={
                "token": explicit["refresh_token"],
                "token_type_hint": "refresh_token",
                "client_id": client_id,
            },
            timeout=10,
        )
        assert revoked.status_code == 200, revoked.text
        with pytest.raises(InvalidGrantError):
            session.refresh_token(metadata["token_endpoint"], client_id=client_id)
        # The session has ended: its last access token is refused too.
        gone = requests.get(
            keyfob.issuer + "/auth/me",
            headers={"Authorization": f"Bearer {explicit['access_token']}"},
            timeout=10,
        )
        assert gone.status_code == 401, gone.text
