"""OpenID Connect id_tokens, userinfo claims and logout hints (keyfob.core.id_tokens),
checked against Authlib's OIDC validators and joserfc."""

from __future__ import annotations

import base64
import contextlib
import dataclasses
import hashlib
import json
from typing import Any

import pytest
from authlib.oidc.core import CodeIDToken
from authlib.oidc.core.util import create_half_hash
from joserfc import jwt as jrfc_jwt
from joserfc.errors import InvalidClaimError, SecurityWarning
from joserfc.jwk import KeySet as JoseKeySet

from keyfob.core.access_tokens import AccessTokenSigner
from keyfob.core.id_tokens import (
    IdTokenHint,
    at_hash,
    has_openid,
    id_token_claims,
    sign_id_token,
    userinfo_claims,
    verify_id_token_hint,
    with_oidc_scopes,
)
from keyfob.core.jwk import ALGORITHMS
from keyfob.core.jws import sign_compact
from keyfob.core.keys import KeySet, SigningKey, derive_kek, generate_key
from keyfob.core.models import Session, User
from keyfob.exceptions import BadSignature, InvalidClaims, MalformedAccessToken, UnknownKeyId

KEK = derive_kek(b"i" * 32)
NOW = 1_700_000_000.0
TTL = 900.0
ISS = "https://auth.example.com"
KEYS: dict[str, SigningKey] = {
    alg: generate_key(alg, now=NOW - 60, activates_at=NOW - 60, kek=KEK) for alg in ALGORITHMS
}
KEY_SET = KeySet(list(KEYS.values()))
SESSION = Session(
    sid="sid-1",
    user_id="user-1",
    client_id="spa",
    scope="openid profile",
    secret_hash=b"h" * 32,
    counter=0,
    created_at=NOW - 3600,
    last_used_at=NOW,
    rotated_at=None,
    idle_expires_at=NOW + 86400,
    absolute_expires_at=NOW + 86400,
)
ACCESS = AccessTokenSigner(issuer=ISS, audience=ISS, ttl=TTL).sign(
    KEYS["ES256"], sub="user-1", sid="sid-1", client_id="spa", scope="openid", now=NOW
)


def claims(alg: str = "RS256", **changes: Any) -> dict[str, object]:
    fields: dict[str, Any] = {
        "issuer": ISS,
        "alg": alg,
        "access_token": ACCESS,
        "nonce": "n-0S6_WzA2Mj",
        "auth_time": NOW - 3600,
        "now": NOW,
        "ttl": TTL,
    }
    fields.update(changes)
    return id_token_claims(SESSION, **fields)


def joserfc_decode(token: str, alg: str) -> jrfc_jwt.Token:
    """joserfc's verification from the published JWK (it warns about the name EdDSA)."""
    jwks = JoseKeySet.import_key_set({"keys": [json.loads(KEYS[alg].record.public_jwk)]})
    deprecated = (
        pytest.warns(SecurityWarning, match="RFC 9864")
        if alg == "EdDSA"
        else contextlib.nullcontext()
    )
    with deprecated:
        return jrfc_jwt.decode(token, jwks, algorithms=[alg])


# --- claims -------------------------------------------------------------------------------


def test_the_claims_of_an_id_token() -> None:
    """iss, sub, aud = azp = the client, exp one access-token lifetime on, iat, auth_time,
    nonce, at_hash and sid; nothing else (profile claims go to userinfo)."""
    assert claims() == {
        "iss": ISS,
        "sub": "user-1",
        "aud": "spa",
        "azp": "spa",
        "exp": int(NOW + TTL),
        "iat": int(NOW),
        "auth_time": int(NOW - 3600),
        "nonce": "n-0S6_WzA2Mj",
        "at_hash": at_hash(ACCESS, "RS256"),
        "sid": "sid-1",
    }


def test_no_nonce_claim_without_a_nonce() -> None:
    """A refresh has no authorization request, so its id_token carries no nonce."""
    assert "nonce" not in claims(nonce=None)


def test_at_hash_of_the_oidc_core_example() -> None:
    """OIDC Core appendix A.3: this access token's RS256 at_hash is 77QmUPtjPfzWtF2AnpK9RQ."""
    assert at_hash("jHkWEdUXMU1BwAsC4vtUsZwnNvTIxEl0z9K3vx5KF0Y", "RS256") == (
        "77QmUPtjPfzWtF2AnpK9RQ"
    )


@pytest.mark.parametrize(
    ("alg", "digest"),
    [("ES256", hashlib.sha256), ("RS256", hashlib.sha256), ("Ed25519", hashlib.sha512)],
)
def test_at_hash_uses_the_hash_of_the_signature(alg: str, digest: Any) -> None:
    """The left half of SHA-256 for ES256 and RS256, of SHA-512 for Ed25519 (and EdDSA,
    where Authlib agrees)."""
    full = digest(ACCESS.encode()).digest()
    expected = base64.urlsafe_b64encode(full[: len(full) // 2]).rstrip(b"=").decode()
    assert at_hash(ACCESS, alg) == expected
    assert at_hash(ACCESS, "EdDSA") == at_hash(ACCESS, "Ed25519")
    authlib_alg = "EdDSA" if alg == "Ed25519" else alg
    assert create_half_hash(ACCESS, authlib_alg).decode() == expected


@pytest.mark.parametrize(
    ("scope", "expected"),
    [("openid", True), ("profile openid", True), ("openidx profile", False), ("", False)],
)
def test_has_openid(scope: str, expected: bool) -> None:
    """openid is a whole scope token, not a prefix."""
    assert has_openid(scope) is expected


def test_oidc_scopes_come_first_once() -> None:
    """openid and profile, then the deployment's scopes, without repeats."""
    assert with_oidc_scopes(("read", "openid")) == ("openid", "profile", "read")
    assert with_oidc_scopes(()) == ("openid", "profile")


# --- signed id_tokens, checked by other libraries -------------------------------------------


@pytest.mark.parametrize("alg", ["RS256", "ES256"])
def test_authlib_validates_the_id_token(alg: str) -> None:
    """Authlib's CodeIDToken accepts keyfob's id_token: iss, aud, exp, iat, nonce,
    auth_time, azp and at_hash (of the access token issued with it)."""
    token = sign_id_token(KEYS[alg], claims(alg))
    decoded = joserfc_decode(token, alg)
    assert decoded.header == {"alg": alg, "typ": "JWT", "kid": KEYS[alg].kid}
    id_token = CodeIDToken(
        decoded.claims,
        decoded.header,
        options={"iss": {"essential": True, "value": ISS}, "aud": {"value": "spa"}},
        params={"nonce": "n-0S6_WzA2Mj", "client_id": "spa", "access_token": ACCESS},
    )
    id_token.validate(now=int(NOW))


def test_authlib_refuses_an_at_hash_of_another_access_token() -> None:
    """The at_hash binds the id_token to its access token: Authlib catches a swap."""
    token = sign_id_token(KEYS["RS256"], claims())
    decoded = joserfc_decode(token, "RS256")
    other = CodeIDToken(
        decoded.claims, decoded.header, params={"access_token": ACCESS + "x", "client_id": "spa"}
    )
    with pytest.raises(InvalidClaimError, match="at_hash"):
        other.validate(now=int(NOW))


@pytest.mark.parametrize("alg", ALGORITHMS)
def test_joserfc_verifies_id_tokens_of_every_algorithm(alg: str) -> None:
    """Each algorithm, Ed25519 by its RFC 9864 name included, verifies in joserfc with
    the right at_hash."""
    token = sign_id_token(KEYS[alg], claims(alg))
    decoded = joserfc_decode(token, alg)
    assert decoded.header["alg"] == alg and decoded.header["typ"] == "JWT"
    assert decoded.claims["at_hash"] == at_hash(ACCESS, alg)


# --- id_token_hint ---------------------------------------------------------------------------


@pytest.mark.parametrize("alg", ALGORITHMS)
def test_a_hint_is_verified_even_after_it_expired(alg: str) -> None:
    """RP-Initiated Logout §2: an expired id_token still names its session."""
    token = sign_id_token(KEYS[alg], claims(alg))
    hint = verify_id_token_hint(token, keys=KEY_SET, issuer=ISS, now=NOW + 30 * 86400)
    assert hint == IdTokenHint(sub="user-1", sid="sid-1", client_id="spa")


def test_a_hint_with_a_single_audience_list_is_read() -> None:
    """aud may be a one-element array (RFC 7519 §4.1.3)."""
    token = sign_id_token(KEYS["ES256"], {**claims(), "aud": ["spa"]})
    assert verify_id_token_hint(token, keys=KEY_SET, issuer=ISS, now=NOW).client_id == "spa"


@pytest.mark.parametrize(
    ("token", "error"),
    [
        pytest.param(ACCESS, MalformedAccessToken, id="an-access-token"),
        pytest.param("not.a.token", MalformedAccessToken, id="garbage"),
        pytest.param("a" * 9000, MalformedAccessToken, id="oversized"),
        pytest.param(
            sign_compact(KEYS["ES256"], {**claims(), "iss": "https://evil.example"}, typ="JWT"),
            InvalidClaims,
            id="another-issuer",
        ),
        pytest.param(
            sign_compact(KEYS["ES256"], {**claims(), "sid": ""}, typ="JWT"),
            InvalidClaims,
            id="no-sid",
        ),
        pytest.param(
            sign_compact(KEYS["ES256"], {**claims(), "aud": ["spa", "api"]}, typ="JWT"),
            InvalidClaims,
            id="two-audiences",
        ),
        pytest.param(
            sign_compact(
                generate_key("ES256", now=NOW, activates_at=NOW, kek=KEK), claims(), typ="JWT"
            ),
            UnknownKeyId,
            id="a-key-not-ours",
        ),
    ],
)
def test_a_hint_keyfob_did_not_issue_is_refused(token: str, error: type[Exception]) -> None:
    """Only an id_token of this issuer, signed with one of its published keys, is a hint."""
    with pytest.raises(error):
        verify_id_token_hint(token, keys=KEY_SET, issuer=ISS, now=NOW)


def test_a_forged_hint_is_refused() -> None:
    """A hint whose payload was changed after signing does not verify."""
    head, _body, signature = sign_id_token(KEYS["ES256"], claims()).split(".")
    forged = json.dumps({**claims(), "sid": "someone-elses"}).encode()
    payload = base64.urlsafe_b64encode(forged).rstrip(b"=").decode()
    with pytest.raises(BadSignature):
        verify_id_token_hint(f"{head}.{payload}.{signature}", keys=KEY_SET, issuer=ISS, now=NOW)


def test_a_hint_signed_by_an_unpublished_key_is_refused() -> None:
    """Once its key has left the JWKS, a hint is refused like any unknown key's token."""
    key = KEYS["ES256"]
    gone = dataclasses.replace(key.record, retired_at=NOW, expires_at=NOW + 1)
    keys = KeySet([SigningKey(gone, key.private_key, key.public_key)])
    token = sign_id_token(key, claims("ES256"))
    assert verify_id_token_hint(token, keys=keys, issuer=ISS, now=NOW).sid == "sid-1"
    with pytest.raises(UnknownKeyId):
        verify_id_token_hint(token, keys=keys, issuer=ISS, now=NOW + 1)


# --- userinfo ----------------------------------------------------------------------------------


def test_userinfo_claims_follow_the_scope() -> None:
    """sub always; preferred_username and updated_at with profile."""
    user = User(id="user-1", username="alice", password_hash="x", created_at=NOW - 10.5)
    assert userinfo_claims(user, {"openid"}) == {"sub": "user-1"}
    assert userinfo_claims(user, {"openid", "profile"}) == {
        "sub": "user-1",
        "preferred_username": "alice",
        "updated_at": int(NOW - 10.5),
    }
