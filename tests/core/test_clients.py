"""The pure client rules: registration checks, redirect-URI matching (RFC 6749 §3.1.2,
RFC 8252 §7.3, RFC 9700 §4.1), client secrets and scopes."""

from __future__ import annotations

import hashlib
import json
from typing import Any

import pytest
from cryptography.hazmat.primitives.asymmetric import ec

from keyfob.core.clients import (
    FIRST_PARTY_CLIENT,
    FIRST_PARTY_CLIENT_ID,
    client_secret_matches,
    hash_client_secret,
    new_client,
    new_client_id,
    new_client_secret,
    parse_scope,
    redirect_uri_allowed,
    scope_within,
)
from keyfob.core.jwk import public_jwk
from keyfob.exceptions import InvalidClientMetadata, InvalidScope

REGISTERED = (
    "https://app.example/cb",
    "com.example.app:/oauth2redirect",
    "http://127.0.0.1/callback",
    "http://[::1]/callback",
)


@pytest.mark.parametrize(
    "presented",
    [
        "https://app.example/cb",
        "com.example.app:/oauth2redirect",
        "http://127.0.0.1/callback",
        "http://127.0.0.1:1/callback",
        "http://127.0.0.1:51234/callback",
        "http://127.0.0.1:65535/callback",
        "http://[::1]:8080/callback",
    ],
)
def test_registered_redirect_uris_match(presented: str) -> None:
    """A registered URI matches itself; a loopback one matches on any port (RFC 8252 §7.3)."""
    assert redirect_uri_allowed(REGISTERED, presented)


@pytest.mark.parametrize(
    "presented",
    [
        # prefixes and extensions
        "https://app.example/cb/",
        "https://app.example/cb/more",
        "https://app.example/cbx",
        "https://app.example/c",
        "https://app.example/cb?next=https://evil.example",
        # path traversal and encodings
        "https://app.example/cb/../evil",
        "https://app.example/cb/%2e%2e/evil",
        "https://app.example/%63b",
        # fragments, userinfo, other hosts (open-redirect variants)
        "https://app.example/cb#frag",
        "https://app.example@evil.example/cb",
        "https://evil.example@app.example/cb",
        "https://app.example.evil.example/cb",
        "https://evil.example/cb",
        "//evil.example/cb",
        "https://APP.EXAMPLE/cb",
        "HTTPS://app.example/cb",
        "https://app.example:443/cb",
        "http://app.example/cb",
        # loopback: only the port may differ
        "http://127.0.0.1:0/callback",
        "http://127.0.0.1:65536/callback",
        "http://127.0.0.1:/callback",
        "http://127.0.0.1:80x/callback",
        "http://127.0.0.1:8080/callback/../x",
        "http://127.0.0.1:8080/other",
        "http://127.0.0.1:8080@evil.example/callback",
        "http://127.0.0.1.evil.example:8080/callback",
        "https://127.0.0.1:8080/callback",
        "http://localhost:8080/callback",
        "http://127.0.0.2:8080/callback",
        "http://127.0.0.1:\uff18\uff10/callback",  # fullwidth digits: isdigit() says yes
        "com.example.app:/oauth2redirect/x",
        "",
    ],
)
def test_anything_else_does_not_match(presented: str) -> None:
    """Exact string comparison: no prefix, normalisation, traversal, userinfo or fragment."""
    assert not redirect_uri_allowed(REGISTERED, presented)


def client(**changes: Any) -> dict[str, Any]:
    base: dict[str, Any] = {
        "client_id": "app",
        "name": "App",
        "auth_method": "client_secret_basic",
        "redirect_uris": ["https://app.example/cb"],
        "grant_types": ["authorization_code", "refresh_token"],
        "scopes": ["read", "write"],
        "created_at": 1.0,
        "secret": "s3cret",
    }
    base.update(changes)
    return base


def jwks() -> str:
    key = ec.generate_private_key(ec.SECP256R1()).public_key()
    return json.dumps({"keys": [{**public_jwk(key, "ES256"), "kid": "k1"}]})


def test_a_registration_keeps_only_the_secret_hash() -> None:
    """new_client() hashes the secret and orders grant types; nothing else changes."""
    made = new_client(**client(grant_types=["refresh_token", "authorization_code"]))
    assert made.secret_hash == hashlib.sha256(b"s3cret").digest()
    assert "s3cret" not in repr(made)
    assert made.grant_types == ("authorization_code", "refresh_token")
    assert made.confidential and made.client_type == "confidential"
    assert made.scopes == ("read", "write") and made.require_pkce


@pytest.mark.parametrize(
    ("changes", "why"),
    [
        ({"client_id": ""}, "client id"),
        ({"client_id": "has space"}, "client id"),
        ({"client_id": "x" * 129}, "client id"),
        ({"client_id": FIRST_PARTY_CLIENT_ID}, "built in"),
        ({"name": ""}, "name"),
        ({"name": "bell\x07"}, "name"),
        ({"auth_method": "client_secret_jwt"}, "auth method"),
        ({"grant_types": ["password"]}, "grant types"),
        ({"grant_types": []}, "grant types"),
        ({"redirect_uris": []}, "redirect URI"),
        ({"redirect_uris": ["/relative"]}, "absolute"),
        ({"redirect_uris": ["https://app.example/cb#x"]}, "fragment"),
        ({"redirect_uris": ["https://user@app.example/cb"]}, "user info"),
        ({"redirect_uris": ["http://app.example/cb"]}, "loopback"),
        ({"redirect_uris": ["javascript:alert(1)"]}, "not allowed"),
        ({"redirect_uris": ["myapp:/cb"]}, "reverse domain"),
        ({"redirect_uris": ["https://App.example/cb"]}, "lower case"),
        ({"redirect_uris": ["https://app.example/c b"]}, "space"),
        ({"redirect_uris": ["https://app.example:99999/cb"]}, "malformed"),
        ({"post_logout_redirect_uris": ["https://app.example/bye#x"]}, "fragment"),
        ({"post_logout_redirect_uris": ["http://app.example/bye"]}, "loopback"),
        ({"post_logout_redirect_uris": ["javascript:alert(1)"]}, "not allowed"),
        ({"post_logout_redirect_uris": ["bye"]}, "absolute"),
        ({"scopes": ['bad"scope']}, "scope"),
        ({"secret": None}, "needs a client secret"),
        ({"auth_method": "none", "secret": "x"}, "no client secret"),
        ({"auth_method": "none", "secret": None, "require_pkce": False}, "PKCE"),
        ({"auth_method": "private_key_jwt", "secret": None}, "JWK Set"),
        ({"auth_method": "private_key_jwt", "secret": None, "jwks": "{}"}, "JWK Set"),
        ({"auth_method": "private_key_jwt", "secret": None, "jwks": '{"keys": []}'}, "no keys"),
        ({"jwks": '{"keys": []}'}, "only a private_key_jwt"),
    ],
)
def test_inconsistent_registrations_are_refused(changes: dict[str, Any], why: str) -> None:
    """Each inconsistency is InvalidClientMetadata saying what is wrong."""
    with pytest.raises(InvalidClientMetadata, match=why):
        new_client(**client(**changes))


def test_post_logout_redirect_uris_are_kept_once_each() -> None:
    """Post-logout redirect URIs follow the redirect URIs' rules, in order, without repeats;
    a registration without them has none."""
    uris = ["https://app.example/bye", "http://127.0.0.1/bye", "https://app.example/bye"]
    made = new_client(**client(post_logout_redirect_uris=uris))
    assert made.post_logout_redirect_uris == ("https://app.example/bye", "http://127.0.0.1/bye")
    assert new_client(**client()).post_logout_redirect_uris == ()


def test_native_and_key_clients_register() -> None:
    """A public native app with loopback and private-use redirects; a private_key_jwt one."""
    native = new_client(
        **client(
            auth_method="none",
            secret=None,
            redirect_uris=["http://127.0.0.1/cb", "http://[::1]/cb", "com.example.app:/cb"],
        )
    )
    assert not native.confidential and native.secret_hash is None
    keyed = new_client(**client(auth_method="private_key_jwt", secret=None, jwks=jwks()))
    assert len(keyed.public_key_set()) == 1


def test_the_first_party_client_is_public_and_refreshes() -> None:
    """keyfob's own client: public, first-party, refresh_token grant."""
    assert FIRST_PARTY_CLIENT.client_id == "keyfob"
    assert not FIRST_PARTY_CLIENT.confidential and FIRST_PARTY_CLIENT.first_party
    assert FIRST_PARTY_CLIENT.allows_grant("refresh_token")
    assert not FIRST_PARTY_CLIENT.allows_grant("authorization_code")


def test_generated_ids_and_secrets_are_random_and_long() -> None:
    """Client ids carry 128 random bits, secrets 256, prefixed kfcs_."""
    assert len({new_client_id() for _ in range(50)}) == 50
    secret = new_client_secret()
    assert secret.startswith("kfcs_") and len(secret) == 5 + 43
    assert secret != new_client_secret()


def test_client_secrets_match_only_their_hash() -> None:
    """The right secret matches; a wrong, empty, overlong secret or no hash does not."""
    stored = hash_client_secret("right")
    assert client_secret_matches("right", stored)
    assert not client_secret_matches("wrong", stored)
    assert not client_secret_matches("", stored)
    assert not client_secret_matches("right" * 100, stored)
    assert not client_secret_matches("right", None)


def test_scopes_parse_and_narrow() -> None:
    """Scopes are space-separated tokens; a request may narrow, never widen."""
    assert parse_scope("read write") == {"read", "write"}
    assert parse_scope(None) == frozenset() and parse_scope("") == frozenset()
    assert scope_within("read", ["read", "write"]) == {"read"}
    with pytest.raises(InvalidScope, match="admin"):
        scope_within("read admin", ["read", "write"])
    for bad in ("read  write", " read", 'a"b', "a\\b", "é"):
        with pytest.raises(InvalidScope, match="malformed"):
            parse_scope(bad)
