"""Interop: Authlib, as an application would use it, against a real ``keyfob serve``, with
a person signing in through the login (and consent) page in real Chromium.

The authorization-code flow with PKCE S256 (RFC 6749 §4.1, RFC 7636), then Authlib's own
automatic refresh of an access token about to expire, RFC 7662 introspection and RFC 7009
revocation by a confidential client; RFC 6749 §4.1.2 code replay; OpenID Connect with
``openid``: Authlib's ``CodeIDToken`` validates the id_token (nonce, at_hash, azp).
Authlib's RFC 8414 / OIDC Discovery validators check the metadata in full, and its
RFC 9068 validator the access tokens. No keyfob code is used on the client's side.
"""

from __future__ import annotations

import time
from typing import Any

import pytest
import requests
from authlib.common.security import generate_token
from authlib.integrations.base_client.errors import OAuthError
from authlib.integrations.requests_client import OAuth2Session
from authlib.oauth2 import rfc9207
from authlib.oauth2.rfc8414 import AuthorizationServerMetadata
from authlib.oauth2.rfc9068 import JWTBearerTokenValidator
from authlib.oidc import rpinitiated
from authlib.oidc.core import CodeIDToken, IDToken
from authlib.oidc.discovery import OpenIDProviderMetadata
from joserfc import jwt
from joserfc.jwk import KeySet

from .conftest import Keyfob, Loopback, query, sign_in

pytestmark = [pytest.mark.browser, pytest.mark.slow]

#: Authlib refreshes a token this many seconds before it expires (its ``leeway``): with
#: 60-second access tokens it does so after 3 s, while the old token is still valid at the
#: server, so that refusals after a revocation are the revocation's doing, not expiry's.
ACCESS_TTL = 60
LEEWAY = 57


@pytest.fixture(scope="module")
def access_ttl() -> int:
    return ACCESS_TTL


class AccessTokens(JWTBearerTokenValidator):  # type: ignore[misc]
    """Authlib's RFC 9068 validator, as a resource server configures it: the issuer, its
    own identifier as the audience, and the keys from the published jwks_uri."""

    def __init__(self, keyfob: Keyfob, jwks: KeySet) -> None:
        super().__init__(issuer=keyfob.issuer, resource_server=keyfob.issuer)
        self.jwks = jwks

    def get_jwks(self) -> KeySet:
        return self.jwks


@pytest.fixture(scope="module")
def metadata(keyfob: Keyfob) -> dict[str, Any]:
    return keyfob.metadata()


@pytest.fixture(scope="module")
def jwks(metadata: dict[str, Any]) -> KeySet:
    document = requests.get(metadata["jwks_uri"], timeout=10).json()
    return KeySet.import_key_set(document)


@pytest.fixture(scope="module")
def confidential(keyfob: Keyfob, loopback: Loopback) -> tuple[str, str]:
    """A confidential web-server client (client_secret_basic) that needs consent."""
    client_id, secret = keyfob.add_client(
        "Authlib reports", "--redirect-uri", loopback.redirect_uri,
        "--scope", "read write", "--auth-method", "client_secret_basic",
    )  # fmt: skip
    assert secret is not None
    return client_id, secret


def session_for(
    client: tuple[str, str], metadata: dict[str, Any], loopback: Loopback, scope: str, **kw: Any
) -> OAuth2Session:
    client_id, secret = client
    return OAuth2Session(
        client_id,
        secret,
        token_endpoint_auth_method="client_secret_basic",
        scope=scope,
        redirect_uri=loopback.redirect_uri,
        code_challenge_method="S256",
        token_endpoint=metadata["token_endpoint"],
        **kw,
    )


def authorize(
    session: OAuth2Session,
    metadata: dict[str, Any],
    browser: Any,
    loopback: Loopback,
    *,
    consent: bool,
    **params: str,
) -> tuple[str, str]:
    """Authlib builds the authorization URL (state, PKCE S256), a person signs in in the
    browser; the redirect URL the client received, and the code verifier."""
    verifier = generate_token(64)
    url, state = session.create_authorization_url(
        metadata["authorization_endpoint"], code_verifier=verifier, **params
    )
    sent = query(url)
    assert sent["code_challenge_method"] == "S256" and sent["state"] == state
    callback = sign_in(browser, loopback, url, consent=consent)
    # RFC 9207: the response names its issuer; Authlib leaves this check to the app.
    assert query(callback)["iss"] == metadata["issuer"]
    assert query(callback)["state"] == state
    return callback, verifier


def test_metadata_passes_authlibs_rfc8414_validator_in_full(keyfob: Keyfob) -> None:
    """Every RFC 8414 check, response_types_supported included, and the RFC 9207 flag."""
    oauth = keyfob.metadata()
    AuthorizationServerMetadata(oauth).validate(
        metadata_classes=[rfc9207.AuthorizationServerMetadata]
    )
    assert oauth["response_types_supported"] == ["code"]
    assert oauth["code_challenge_methods_supported"] == ["S256"]
    assert {"authorization_code", "refresh_token"} <= set(oauth["grant_types_supported"])
    assert oauth["authorization_response_iss_parameter_supported"] is True


def test_discovery_passes_authlibs_oidc_validators(keyfob: Keyfob) -> None:
    """Every OpenID Connect Discovery and RP-initiated logout check; the discovery
    document and the RFC 8414 metadata agree on every member they share."""
    oauth = keyfob.metadata()
    oidc = keyfob.openid_configuration()
    OpenIDProviderMetadata(oidc).validate(
        metadata_classes=[rfc9207.AuthorizationServerMetadata, rpinitiated.OpenIDProviderMetadata]
    )
    assert "RS256" in oidc["id_token_signing_alg_values_supported"]  # OIDC Core §15.1
    assert "openid" in oidc["scopes_supported"]
    shared = set(oauth) & set(oidc)
    assert {"issuer", "authorization_endpoint", "token_endpoint", "jwks_uri"} <= shared
    assert {k: oauth[k] for k in shared} == {k: oidc[k] for k in shared}


def test_authlib_code_flow_refresh_introspect_revoke(
    keyfob: Keyfob,
    metadata: dict[str, Any],
    jwks: KeySet,
    confidential: tuple[str, str],
    browser: Any,
    loopback: Loopback,
) -> None:
    """Code + PKCE with consent; Authlib then refreshes the access token about to expire
    by itself, introspects, and revokes the access token, which ends the session."""
    client_id = confidential[0]
    updates: list[dict[str, Any]] = []
    session = session_for(
        confidential, metadata, loopback, "read write",
        leeway=LEEWAY, update_token=lambda token, **_: updates.append(token),
    )  # fmt: skip
    with session:
        callback, verifier = authorize(session, metadata, browser, loopback, consent=True)
        # Authlib checks the state against the one it made.
        token = session.fetch_token(authorization_response=callback, code_verifier=verifier)
        assert token["token_type"].lower() == "bearer"
        assert token["scope"] == "read write"
        assert token["expires_in"] == ACCESS_TTL
        assert token["refresh_token"].startswith("kfrt_")
        assert "id_token" not in token, "no openid scope, no id_token"

        claims = AccessTokens(keyfob, jwks).authenticate_token(token["access_token"])
        claims.validate()
        assert claims["client_id"] == client_id
        assert claims["scope"] == "read write"
        assert claims["sub"] == keyfob.user_id

        # Authlib refreshes a token about to expire before the request, with no help.
        time.sleep(ACCESS_TTL - LEEWAY + 0.5)
        me = session.get(keyfob.issuer + "/auth/me", timeout=10)
        assert me.status_code == 200, me.text
        assert me.json()["client_id"] == client_id
        assert len(updates) == 1
        refreshed = updates[0]
        assert refreshed["refresh_token"] != token["refresh_token"], "rotated"
        assert refreshed["scope"] == "read write"
        AccessTokens(keyfob, jwks).authenticate_token(refreshed["access_token"]).validate()

        introspected = session.introspect_token(
            metadata["introspection_endpoint"], token=refreshed["refresh_token"]
        )
        assert introspected.status_code == 200, introspected.text
        info = introspected.json()
        assert info["active"] is True
        assert info["client_id"] == client_id and info["sub"] == keyfob.user_id
        assert info["scope"] == "read write"

        # RFC 7009: revoking the access token ends its session at once.
        revoked = session.revoke_token(
            metadata["revocation_endpoint"],
            token=refreshed["access_token"],
            token_type_hint="access_token",
        )
        assert revoked.status_code == 200, revoked.text
        me = requests.get(
            keyfob.issuer + "/auth/me",
            headers={"Authorization": f"Bearer {refreshed['access_token']}"},
            timeout=10,
        )
        assert me.status_code == 401, me.text
        for gone in (refreshed["access_token"], refreshed["refresh_token"]):
            after = session.introspect_token(metadata["introspection_endpoint"], token=gone)
            assert after.json() == {"active": False}
        with pytest.raises(OAuthError) as refused:
            session.refresh_token(metadata["token_endpoint"])
        assert refused.value.error == "invalid_grant"


def test_authlib_code_replay_ends_what_the_code_started(
    metadata: dict[str, Any], confidential: tuple[str, str], browser: Any, loopback: Loopback
) -> None:
    """RFC 6749 §4.1.2: a code is single-use; using it again is refused and revokes the
    tokens issued from it."""
    with session_for(confidential, metadata, loopback, "read") as session:
        callback, verifier = authorize(session, metadata, browser, loopback, consent=True)
        first = session.fetch_token(authorization_response=callback, code_verifier=verifier)
        with pytest.raises(OAuthError) as replayed:
            session.fetch_token(authorization_response=callback, code_verifier=verifier)
        assert replayed.value.error == "invalid_grant"
        info = session.introspect_token(
            metadata["introspection_endpoint"], token=first["refresh_token"]
        )
        assert info.json() == {"active": False}
        with pytest.raises(OAuthError) as refused:
            session.refresh_token(metadata["token_endpoint"], refresh_token=first["refresh_token"])
        assert refused.value.error == "invalid_grant"


@pytest.fixture(scope="module")
def openid_client(keyfob: Keyfob, loopback: Loopback) -> tuple[str, str]:
    """A first-party confidential client that signs people in with OpenID Connect."""
    client_id, secret = keyfob.add_client(
        "Authlib portal", "--redirect-uri", loopback.redirect_uri,
        "--scope", "openid profile read", "--first-party",
    )  # fmt: skip
    assert secret is not None
    return client_id, secret


def test_authlib_validates_the_id_token(
    keyfob: Keyfob,
    jwks: KeySet,
    openid_client: tuple[str, str],
    browser: Any,
    loopback: Loopback,
) -> None:
    """scope=openid: the id_token passes Authlib's CodeIDToken checks (signature with a
    key from jwks_uri and an alg from the discovery document, iss, aud, exp, iat, nonce,
    azp, at_hash); a first-party client is not asked for consent. The refreshed id_token
    is about the same person, client and session (OIDC Core §12.2)."""
    discovery = keyfob.openid_configuration()
    nonce = generate_token(24)
    with session_for(openid_client, discovery, loopback, "openid profile") as session:
        first = openid_sign_in(session, discovery, jwks, browser, loopback, nonce=nonce)
        assert first["sub"] == keyfob.user_id
        assert first["nonce"] == nonce
        assert "at_hash" in first and "sid" in first
        assert abs(first["auth_time"] - time.time()) < 60

        refreshed = session.refresh_token(discovery["token_endpoint"])
        again = id_token_claims(
            refreshed, jwks, discovery, session.client_id, access_token=refreshed["access_token"]
        )
        assert "nonce" not in again, "a refresh has no authentication request"
        for claim in ("iss", "sub", "aud", "sid"):
            assert again[claim] == first[claim], claim


def test_a_refreshed_id_token_keeps_the_sign_in_time(
    keyfob: Keyfob,
    jwks: KeySet,
    openid_client: tuple[str, str],
    browser: Any,
    loopback: Loopback,
) -> None:
    """OIDC Core §12.2: the auth_time of a refreshed id_token is the time of the original
    authentication. The code is exchanged over a second after the sign-in, so that the
    two moments differ in whole seconds."""
    discovery = keyfob.openid_configuration()
    with session_for(openid_client, discovery, loopback, "openid") as session:
        first = openid_sign_in(
            session, discovery, jwks, browser, loopback, nonce=generate_token(24), pause=1.5
        )
        refreshed = session.refresh_token(discovery["token_endpoint"])
        again = id_token_claims(
            refreshed, jwks, discovery, session.client_id, access_token=refreshed["access_token"]
        )
        assert again["auth_time"] == first["auth_time"]


def openid_sign_in(
    session: OAuth2Session,
    discovery: dict[str, Any],
    jwks: KeySet,
    browser: Any,
    loopback: Loopback,
    *,
    nonce: str,
    pause: float = 0.0,
) -> IDToken:
    """Sign in with ``nonce`` (no consent: a first-party client), wait ``pause`` seconds,
    exchange the code; the id_token's claims, validated."""
    callback, verifier = authorize(
        session, discovery, browser, loopback, consent=False, nonce=nonce
    )
    time.sleep(pause)
    token = session.fetch_token(authorization_response=callback, code_verifier=verifier)
    assert token["scope"] == session.scope
    return id_token_claims(
        token, jwks, discovery, session.client_id, nonce=nonce, access_token=token["access_token"]
    )


def id_token_claims(
    token: dict[str, Any],
    jwks: KeySet,
    discovery: dict[str, Any],
    client_id: str,
    *,
    access_token: str,
    nonce: str | None = None,
) -> IDToken:
    """Validate ``token["id_token"]`` the way Authlib's OpenID client does."""
    decoded = jwt.decode(
        token["id_token"], jwks, algorithms=discovery["id_token_signing_alg_values_supported"]
    )
    assert decoded.header["alg"] in discovery["id_token_signing_alg_values_supported"]
    claims = CodeIDToken(
        decoded.claims,
        decoded.header,
        {
            "iss": {"essential": True, "value": discovery["issuer"]},
            "aud": {"essential": True, "value": client_id},
        },
        {"nonce": nonce, "client_id": client_id, "access_token": access_token},
    )
    claims.validate(leeway=5)
    return claims
