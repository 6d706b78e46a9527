"""RFC 9068 access tokens: what keyfob signs, and every token it must refuse (spec §7)."""

from __future__ import annotations

import base64
import contextlib
import dataclasses
import hashlib
import hmac
import json
from typing import Any

import jwt
import pytest
from cryptography.hazmat.primitives import serialization
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from joserfc import jwt as jrfc_jwt
from joserfc.errors import SecurityWarning
from joserfc.jwk import KeySet as JoseKeySet

from keyfob.core.access_tokens import (
    AccessClaims,
    AccessTokenSigner,
    AccessTokenVerifier,
)
from keyfob.core.jwk import ALGORITHMS, PublicKeySet
from keyfob.core.jws import sign_bytes, verify_jws, verify_signature
from keyfob.core.keys import (
    KeySet,
    SigningKey,
    derive_kek,
    generate_key,
    plan_rotation,
)
from keyfob.exceptions import (
    BadSignature,
    ConfigurationError,
    ExpiredAccessToken,
    InvalidClaims,
    InvalidToken,
    MalformedAccessToken,
)

KEK = derive_kek(b"k" * 32)
NOW = 1_700_000_000.0
TTL = 900.0
LEEWAY = 30.0
ISS = "https://auth.example.com"
AUD = "https://api.example.com"

# Made once for the module (RSA generation is slow); the hypothesis tests use them too.
KEYS: dict[str, SigningKey] = {
    alg: generate_key(alg, now=NOW - 60, activates_at=NOW - 60, kek=KEK) for alg in ALGORITHMS
}
KEY_SET = KeySet(list(KEYS.values()))
#: PyJWT 2.15 knows Ed25519 signatures only by the deprecated name EdDSA (RFC 9864).
PYJWT_ALGORITHMS = [alg for alg in ALGORITHMS if alg != "Ed25519"]
SIGNER = AccessTokenSigner(issuer=ISS, audience=AUD, ttl=TTL)
VERIFIER = AccessTokenVerifier(KEY_SET, issuer=ISS, audience=AUD, leeway=LEEWAY)
ES256 = KEYS["ES256"]

DELETE = object()  # marks a claim or header member to leave out


def b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def claims(**changes: object) -> dict[str, object]:
    """A valid claim set for NOW, with some claims changed or (with DELETE) removed."""
    base: dict[str, object] = {
        "iss": ISS,
        "sub": "user-1",
        "aud": AUD,
        "exp": int(NOW + TTL),
        "iat": int(NOW),
        "jti": "jti-1",
        "client_id": "web",
        "sid": "sid-1",
        "scope": "openid profile",
    }
    base.update(changes)
    return {k: v for k, v in base.items() if v is not DELETE}


def header(key: SigningKey = ES256, **changes: object) -> dict[str, object]:
    base: dict[str, object] = {"alg": key.alg, "typ": "at+jwt", "kid": key.kid}
    base.update(changes)
    return {k: v for k, v in base.items() if v is not DELETE}


def forge(
    head: dict[str, object],
    body: dict[str, object] | bytes,
    *,
    key: SigningKey | None = ES256,
    signature: bytes | None = None,
) -> str:
    """A compact JWS with any header and payload, signed by ``key`` through keyfob itself."""
    payload = body if isinstance(body, bytes) else json.dumps(body).encode()
    signing_input = f"{b64(json.dumps(head).encode())}.{b64(payload)}"
    if signature is None:
        assert key is not None
        signature = sign_bytes(key, signing_input.encode())
    return f"{signing_input}.{b64(signature)}"


def sign(key: SigningKey = ES256, **kwargs: Any) -> str:
    fields: dict[str, Any] = {
        "sub": "user-1",
        "sid": "sid-1",
        "client_id": "web",
        "scope": ["profile", "openid"],
        "now": NOW,
    }
    fields.update(kwargs)
    return SIGNER.sign(key, **fields)


def parts(token: str) -> tuple[dict[str, Any], dict[str, Any]]:
    head, payload, _ = token.split(".")
    return json.loads(unb64(head)), json.loads(unb64(payload))


# --- what keyfob signs -------------------------------------------------------------------


@pytest.mark.parametrize("alg", ALGORITHMS)
def test_a_signed_token_verifies_into_its_claims(alg: str) -> None:
    """sign() then verify() gives back the session, client, scope and times."""
    key = KEYS[alg]
    token = sign(key, jti="jti-7")
    got = VERIFIER.verify(token, now=NOW)
    assert got == AccessClaims(
        sub="user-1",
        sid="sid-1",
        client_id="web",
        scope=frozenset({"openid", "profile"}),
        jti="jti-7",
        iss=ISS,
        aud=AUD,
        iat=int(NOW),
        exp=int(NOW + TTL),
        raw=got.raw,
        not_before=int(NOW),
    )
    assert got.raw == parts(token)[1]


@pytest.mark.parametrize("alg", ALGORITHMS)
def test_the_token_has_exactly_the_rfc9068_header_and_claims(alg: str) -> None:
    """Header alg/typ/kid; claims iss sub aud exp iat jti client_id sid scope, nothing else."""
    key = KEYS[alg]
    head, body = parts(sign(key))
    assert head == {"alg": alg, "typ": "at+jwt", "kid": key.kid}
    assert set(body) == {"iss", "sub", "aud", "exp", "iat", "jti", "client_id", "sid", "scope"}
    assert body["scope"] == "openid profile"
    assert (type(body["exp"]), type(body["iat"])) == (int, int)


@pytest.mark.parametrize("alg", PYJWT_ALGORITHMS)
def test_pyjwt_accepts_the_tokens_keyfob_signs(alg: str) -> None:
    """Interop: an independent JOSE library verifies keyfob's tokens with the public key."""
    key = KEYS[alg]
    token = sign(key)
    decoded = jwt.decode(
        token,
        key.public_key,
        algorithms=[alg],
        audience=AUD,
        issuer=ISS,
        options={"verify_exp": False},  # PyJWT reads the wall clock; NOW is in the past
    )
    assert decoded == parts(token)[1]
    assert jwt.get_unverified_header(token)["typ"] == "at+jwt"


@pytest.mark.parametrize("alg", ALGORITHMS)
def test_joserfc_accepts_the_tokens_keyfob_signs(alg: str) -> None:
    """Interop: joserfc verifies keyfob's tokens from the published JWK, Ed25519 (RFC 9864)
    included; the deprecated name EdDSA verifies too, with joserfc's warning about it."""
    key = KEYS[alg]
    token = sign(key)
    jwks = JoseKeySet.import_key_set({"keys": [json.loads(key.record.public_jwk)]})
    deprecated = (
        pytest.warns(SecurityWarning, match="RFC 9864")
        if alg == "EdDSA"
        else contextlib.nullcontext()
    )
    with deprecated:
        decoded = jrfc_jwt.decode(token, jwks, algorithms=[alg])
    assert decoded.header["alg"] == alg and decoded.header["typ"] == "at+jwt"
    assert decoded.claims == parts(token)[1]


@pytest.mark.parametrize(("signed", "published"), [("Ed25519", "EdDSA"), ("EdDSA", "Ed25519")])
def test_ed25519_and_eddsa_name_one_algorithm(signed: str, published: str) -> None:
    """A token naming either name of Ed25519 verifies under a key published under the
    other (RFC 9864: the same signature on the same key type); other algorithms stay apart."""
    key = KEYS[published]
    alias = SigningKey(dataclasses.replace(key.record, alg=signed), key.private_key, key.public_key)
    # A signer of its own: SIGNER keeps the header it made for this kid under the other name.
    token = AccessTokenSigner(issuer=ISS, audience=AUD, ttl=TTL).sign(
        alias, sub="user-1", sid="sid-1", client_id="web", scope="openid", now=NOW
    )
    assert parts(token)[0]["alg"] == signed and parts(token)[0]["kid"] == key.kid
    assert VERIFIER.verify(token, now=NOW).sub == "user-1"


def test_ed25519_is_not_an_alias_of_another_algorithm() -> None:
    """An Ed25519-named token on an ES256 key's kid is refused like any other mismatch."""
    token = forge(header(KEYS["Ed25519"], kid=KEYS["ES256"].kid), claims(), key=KEYS["Ed25519"])
    with pytest.raises(BadSignature):
        VERIFIER.verify(token, now=NOW)


@pytest.mark.parametrize("alg", PYJWT_ALGORITHMS)
def test_keyfob_accepts_at_jwt_tokens_pyjwt_signs(alg: str) -> None:
    """Interop: a token PyJWT signs with one of our keys and typ at+jwt verifies."""
    key = KEYS[alg]
    token = jwt.encode(
        claims(), key.private_key, algorithm=alg, headers={"typ": "at+jwt", "kid": key.kid}
    )
    assert VERIFIER.verify(token, now=NOW).sub == "user-1"


def test_each_token_gets_its_own_jti_unless_one_is_given() -> None:
    """jti defaults to 128 random bits; an explicit jti is kept."""
    jtis = {parts(sign())[1]["jti"] for _ in range(20)}
    assert len(jtis) == 20
    assert all(len(unb64(j)) == 16 for j in jtis)
    assert parts(sign(jti="mine"))[1]["jti"] == "mine"


@pytest.mark.parametrize(
    ("scope", "text"),
    [
        (["write", "read", "write"], "read write"),
        (frozenset({"b", "a"}), "a b"),
        ("openid  profile", "openid profile"),
        ([], ""),
    ],
)
def test_scope_is_one_space_separated_string(scope: object, text: str) -> None:
    """A scope collection is sorted and deduplicated; a scope string is normalised."""
    token = sign(scope=scope)
    assert parts(token)[1].get("scope") == (text or None)
    assert VERIFIER.verify(token, now=NOW).scope == frozenset(text.split())


def test_no_scope_means_no_scope_claim() -> None:
    """RFC 6749 §3.3: an empty scope is no scope: the claim is left out, never ""."""
    token = sign(scope="")
    assert "scope" not in parts(token)[1]
    assert VERIFIER.verify(token, now=NOW).scope == frozenset()


def test_a_token_with_an_empty_scope_string_still_verifies() -> None:
    """Tokens minted before the claim was left out carry "scope": ""; they verify as no scope."""
    token = forge(header(), claims(scope=""))
    assert VERIFIER.verify(token, now=NOW).scope == frozenset()


@pytest.mark.parametrize("scope", [["has space"], ['quo"te'], ["back\\slash"], ["é"], [""]])
def test_a_scope_token_outside_rfc6749_is_refused_at_signing(scope: list[str]) -> None:
    """Scope tokens are printable ASCII without space, quote or backslash (RFC 6749 §3.3)."""
    with pytest.raises(ValueError, match="scope"):
        sign(scope=scope)


@pytest.mark.parametrize("field", ["sub", "sid", "client_id"])
def test_an_empty_identity_is_refused_at_signing(field: str) -> None:
    """The signer never makes a token the verifier would refuse for an empty claim."""
    with pytest.raises(ValueError, match="cannot be empty"):
        sign(**{field: ""})


def test_the_signer_uses_a_key_only_inside_its_signing_window() -> None:
    """Publish-before-sign is enforced at signing too: not before activation, not after."""
    pending = generate_key("ES256", now=NOW, activates_at=NOW + 300, kek=KEK)
    with pytest.raises(ConfigurationError):
        sign(pending, now=NOW + 299)
    assert sign(pending, now=NOW + 300)
    retired = dataclasses.replace(
        pending, record=dataclasses.replace(pending.record, retired_at=NOW + 400)
    )
    assert sign(retired, now=NOW + 399)
    with pytest.raises(ConfigurationError):
        sign(retired, now=NOW + 400)


def test_the_signer_refuses_a_useless_configuration() -> None:
    """No issuer, no audience or a non-positive lifetime is a configuration error."""
    with pytest.raises(ConfigurationError):
        AccessTokenSigner(issuer="", audience=AUD, ttl=TTL)
    with pytest.raises(ConfigurationError):
        AccessTokenSigner(issuer=ISS, audience="", ttl=TTL)
    for ttl in (0, -5, float("nan")):
        with pytest.raises(ConfigurationError):
            AccessTokenSigner(issuer=ISS, audience=AUD, ttl=ttl)


@pytest.mark.parametrize("typ", ["at+jwt", "AT+JWT", "application/at+jwt", "Application/AT+JWT"])
def test_typ_is_compared_case_insensitively_with_or_without_application(typ: str) -> None:
    """RFC 9068 §4: at+jwt, and its full media type, in any case."""
    assert VERIFIER.verify(forge(header(typ=typ), claims()), now=NOW).sub == "user-1"


# --- header attacks ----------------------------------------------------------------------


@pytest.mark.parametrize("alg", ["none", "None", "NONE"])
def test_alg_none_is_refused(alg: str) -> None:
    """An unsigned token (alg none), with or without a signature segment, never verifies."""
    unsigned = forge(header(alg=alg), claims(), signature=b"")
    assert unsigned.endswith(".")
    with pytest.raises(MalformedAccessToken):
        VERIFIER.verify(unsigned, now=NOW)
    with pytest.raises(MalformedAccessToken, match="algorithm"):
        VERIFIER.verify(forge(header(alg=alg), claims(), signature=b"x"), now=NOW)


@pytest.mark.parametrize("encoding", ["pem", "der", "jwk"])
@pytest.mark.parametrize("alg", ["HS256", "HS384", "HS512"])
def test_hmac_with_the_public_key_as_secret_is_refused(alg: str, encoding: str) -> None:
    """Algorithm confusion: an HMAC keyed with our public key is refused, not verified."""
    public = ES256.public_key
    secret = {
        "pem": public.public_bytes(
            serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
        ),
        "der": public.public_bytes(
            serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
        ),
        "jwk": ES256.record.public_jwk.encode(),
    }[encoding]
    head = header(alg=alg)
    signing_input = f"{b64(json.dumps(head).encode())}.{b64(json.dumps(claims()).encode())}"
    digest = getattr(hashlib, "sha" + alg[2:])
    mac = hmac.new(secret, signing_input.encode(), digest).digest()
    with pytest.raises(MalformedAccessToken, match="algorithm"):
        VERIFIER.verify(f"{signing_input}.{b64(mac)}", now=NOW)


def test_an_alg_that_is_not_the_keys_own_is_refused() -> None:
    """A token naming our ES256 key but signed EdDSA (an allowed alg) is refused."""
    token = forge(header(KEYS["EdDSA"], kid=ES256.kid), claims(), key=KEYS["EdDSA"])
    with pytest.raises(BadSignature, match="its key's algorithm"):
        VERIFIER.verify(token, now=NOW)


def test_a_kid_that_names_no_key_is_refused() -> None:
    """A token from a key we never published fails, whatever it claims."""
    stranger = generate_key("ES256", now=NOW, activates_at=NOW, kek=KEK)
    with pytest.raises(BadSignature, match="kid"):
        VERIFIER.verify(forge(header(stranger), claims(), key=stranger), now=NOW)


def test_a_token_signed_by_another_key_under_our_kid_is_refused() -> None:
    """An attacker's own key cannot borrow the kid of ours."""
    attacker = generate_key("ES256", now=NOW, activates_at=NOW, kek=KEK)
    with pytest.raises(BadSignature, match="does not verify"):
        VERIFIER.verify(forge(header(), claims(), key=attacker), now=NOW)


@pytest.mark.parametrize("kid", [DELETE, None, 5, ["kid"], ""])
def test_a_missing_or_non_text_kid_is_refused(kid: object) -> None:
    """Without a kid naming a published key there is nothing to verify with."""
    with pytest.raises(BadSignature):
        VERIFIER.verify(forge(header(kid=kid), claims()), now=NOW)


@pytest.mark.parametrize(
    ("member", "value"),
    [
        ("jku", "https://attacker.example/jwks.json"),
        ("x5u", "https://attacker.example/cert.pem"),
        ("jwk", {"kty": "EC", "crv": "P-256", "x": "AA", "y": "AA"}),
        ("x5c", ["MIIB"]),
        ("crit", ["exp"]),
        ("b64", False),
    ],
)
def test_headers_that_bring_their_own_key_or_rules_are_refused(member: str, value: object) -> None:
    """jku, x5u, jwk, x5c (key by value or URL), crit and b64 are refused even when signed."""
    with pytest.raises(MalformedAccessToken, match="own key or critical"):
        VERIFIER.verify(forge(header(**{member: value}), claims()), now=NOW)


@pytest.mark.parametrize("typ", ["JWT", "jwt", DELETE, None, 1, "at+jwt ", "application/jwt"])
def test_a_token_that_is_not_at_jwt_is_refused(typ: object) -> None:
    """An ID token or any other JWT signed by the same key is not an access token."""
    with pytest.raises(MalformedAccessToken, match="type"):
        VERIFIER.verify(forge(header(typ=typ), claims()), now=NOW)


def test_the_allow_list_can_be_narrowed() -> None:
    """A verifier restricted to ES256 refuses an EdDSA token from its own key set."""
    only_es256 = AccessTokenVerifier(KEY_SET, issuer=ISS, audience=AUD, algorithms=["ES256"])
    assert only_es256.verify(sign(ES256), now=NOW)
    with pytest.raises(MalformedAccessToken, match="algorithm"):
        only_es256.verify(sign(KEYS["EdDSA"]), now=NOW)


@pytest.mark.parametrize(
    "kwargs",
    [
        {"algorithms": ["none"]},
        {"algorithms": ["HS256"]},
        {"algorithms": ["ES256", "HS256"]},
        {"algorithms": []},
        {"leeway": -1},
        {"leeway": 301},
        {"max_token_bytes": 10},
        {"issuer": ""},
        {"audience": ""},
    ],
)
def test_an_unsafe_verifier_cannot_be_built(kwargs: dict[str, Any]) -> None:
    """none/HS*, an unbounded leeway or no issuer are refused when the verifier is made."""
    with pytest.raises(ConfigurationError):
        AccessTokenVerifier(KEY_SET, **{"issuer": ISS, "audience": AUD, **kwargs})


# --- time --------------------------------------------------------------------------------


def test_a_token_expires_after_exp_plus_the_leeway() -> None:
    """exp is honoured with the leeway, and not a second more."""
    token = sign()
    exp = NOW + TTL
    assert VERIFIER.verify(token, now=exp + LEEWAY - 0.001)
    with pytest.raises(ExpiredAccessToken, match="expired"):
        VERIFIER.verify(token, now=exp + LEEWAY)


def test_a_token_with_nbf_in_the_future_is_refused() -> None:
    """nbf later than now + leeway means not valid yet; within the leeway it passes."""
    with pytest.raises(ExpiredAccessToken, match="not valid yet"):
        VERIFIER.verify(forge(header(), claims(nbf=int(NOW + LEEWAY + 1))), now=NOW)
    assert VERIFIER.verify(forge(header(), claims(nbf=int(NOW + LEEWAY))), now=NOW)


def test_not_before_is_the_later_of_iat_and_nbf() -> None:
    """The verified claims say when the token starts to be valid, so caches need not redo it."""
    later = VERIFIER.verify(forge(header(), claims(nbf=int(NOW + 5))), now=NOW)
    earlier = VERIFIER.verify(forge(header(), claims(nbf=int(NOW - 5))), now=NOW)
    assert (later.not_before, earlier.not_before) == (int(NOW + 5), earlier.iat)


def test_a_token_issued_in_the_future_is_refused() -> None:
    """iat beyond now + leeway is refused: the issuer's clock or the token is wrong."""
    with pytest.raises(ExpiredAccessToken, match="not valid yet"):
        VERIFIER.verify(forge(header(), claims(iat=int(NOW + LEEWAY + 1))), now=NOW)


# --- claims ------------------------------------------------------------------------------


def test_a_token_from_another_issuer_is_refused() -> None:
    """iss must be exactly ours."""
    for iss in ("https://evil.example.com", ISS + "/", [ISS], DELETE):
        with pytest.raises(InvalidClaims, match="issuer"):
            VERIFIER.verify(forge(header(), claims(iss=iss)), now=NOW)


def test_a_token_for_another_audience_is_refused() -> None:
    """aud must be ours, or a list that contains ours."""
    assert VERIFIER.verify(forge(header(), claims(aud=["https://x.example", AUD])), now=NOW)
    for aud in ("https://other.example.com", ["https://x.example"], [], DELETE, {AUD: 1}):
        with pytest.raises(InvalidClaims, match="audience"):
            VERIFIER.verify(forge(header(), claims(aud=aud)), now=NOW)


@pytest.mark.parametrize(
    ("name", "value"),
    [
        ("sub", DELETE),
        ("sub", 42),
        ("sub", ""),
        ("sid", None),
        ("sid", ["sid-1"]),
        ("client_id", DELETE),
        ("jti", 1.5),
        ("scope", ["openid"]),
        ("scope", None),
        ("exp", DELETE),
        ("exp", "1700000900"),
        ("exp", True),
        ("exp", None),
        ("iat", DELETE),
        ("iat", {"t": 1}),
        ("nbf", "soon"),
        ("nbf", None),
    ],
)
def test_a_required_claim_that_is_missing_or_mistyped_is_refused(name: str, value: object) -> None:
    """sub sid client_id jti are strings, scope a string, exp/iat/nbf numbers (not bools)."""
    with pytest.raises(InvalidClaims, match=name):
        VERIFIER.verify(forge(header(), claims(**{name: value})), now=NOW)


def test_an_infinite_expiry_is_refused() -> None:
    """1e400 parses to infinity in Python; it is not a NumericDate."""
    body = json.dumps(claims()).replace(str(int(NOW + TTL)), "1e400").encode()
    with pytest.raises(InvalidClaims, match="exp"):
        VERIFIER.verify(forge(header(), body), now=NOW)


def test_fractional_times_are_numeric_dates() -> None:
    """RFC 7519 NumericDate may be fractional; AccessClaims carries whole seconds."""
    got = VERIFIER.verify(forge(header(), claims(exp=NOW + 10.75, iat=NOW - 0.5)), now=NOW)
    assert (got.exp, got.iat) == (int(NOW + 10), int(NOW - 1))


# --- shape attacks -----------------------------------------------------------------------


def test_a_truncated_token_is_refused() -> None:
    """Every prefix of a valid token is refused as an InvalidToken."""
    token = sign()
    for end in range(len(token)):
        with pytest.raises(InvalidToken):
            VERIFIER.verify(token[:end], now=NOW)


def test_an_oversized_token_is_refused_before_it_is_decoded() -> None:
    """The size cap comes first: a huge token costs one length check."""
    token = sign()
    small = AccessTokenVerifier(KEY_SET, issuer=ISS, audience=AUD, max_token_bytes=len(token) - 1)
    with pytest.raises(MalformedAccessToken, match="too long"):
        small.verify(token, now=NOW)
    with pytest.raises(MalformedAccessToken, match="too long"):
        VERIFIER.verify("A" * 10_000_000, now=NOW)
    with pytest.raises(MalformedAccessToken, match="too long"):
        VERIFIER.verify(forge(header(pad="x" * 9000), claims()), now=NOW)


def test_an_altered_payload_is_refused() -> None:
    """Changing any claim breaks the signature."""
    head, _, signature = sign().split(".")
    evil = b64(json.dumps(claims(sub="admin")).encode())
    with pytest.raises(BadSignature, match="does not verify"):
        VERIFIER.verify(f"{head}.{evil}.{signature}", now=NOW)


def test_an_altered_signature_is_refused() -> None:
    """A flipped signature bit, or a signature of the wrong length, fails verification."""
    head, payload, signature = sign().split(".")
    raw = bytearray(unb64(signature))
    raw[5] ^= 1
    for bad in (bytes(raw), bytes(raw[:-1]), bytes(raw) + b"\0", b"\0" * 64):
        with pytest.raises(BadSignature):
            VERIFIER.verify(f"{head}.{payload}.{b64(bad)}", now=NOW)


def test_a_non_canonical_base64_signature_is_refused() -> None:
    """Unused low bits in the last character would give one token several spellings."""
    token = sign()
    alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"
    last = alphabet.index(token[-1])
    twin = token[:-1] + alphabet[last + 1]  # 64 bytes in 86 characters: 4 unused bits
    assert unb64(twin.rsplit(".", 1)[1]) == unb64(token.rsplit(".", 1)[1])
    with pytest.raises(MalformedAccessToken, match="canonical"):
        VERIFIER.verify(twin, now=NOW)


@pytest.mark.parametrize(
    "token",
    [
        "",
        ".",
        "..",
        "a.b",
        "a.b.c.d",
        "a..",
        "é.é.é",
        "eyJ0eXAi.ÿ.AA",
        "\x00.\x00.\x00",
        "a b.c.d",
        "a+b.c.d",
        "a/b.c.d",
        "YQ==.YQ.YQ",
        *(
            b64(head) + ".e30.AA"
            for head in (
                b"{",
                b"[]",
                b'"alg"',
                b"\xff\xfe",
                b"[" * 5000,
                b'{"alg": NaN}',
                b'{"alg": 1' + b"0" * 5000 + b"}",
            )
        ),
    ],
    ids=lambda t: repr(t[:24]),
)
def test_garbage_is_malformed(token: str) -> None:
    """Bad shape, bad base64, bad UTF-8, bad or deep JSON: all MalformedAccessToken."""
    with pytest.raises(MalformedAccessToken):
        VERIFIER.verify(token, now=NOW)


@pytest.mark.parametrize(
    "value", [None, 1, b"a.b.c", bytearray(b"a.b.c"), ["a.b.c"], sign().encode()]
)
def test_a_token_that_is_not_text_is_malformed(value: object) -> None:
    """bytes (even of a valid token), None or a list: MalformedAccessToken, not TypeError."""
    with pytest.raises(MalformedAccessToken, match="text"):
        VERIFIER.verify(value, now=NOW)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    "payload",
    [
        b"",
        b"[]",
        b'"claims"',
        b"null",
        b"not json",
        b"\xff\xfe",
        b'{"exp": NaN}',
        b'{"exp": Infinity}',
        b'{"exp": 1' + b"0" * 5000 + b"}",
    ],
    ids=lambda p: repr(p[:16]),
)
def test_a_signed_payload_that_is_not_a_json_object_is_malformed(payload: bytes) -> None:
    """Even correctly signed, a payload must be a JSON object with standard numbers."""
    with pytest.raises(MalformedAccessToken, match="payload"):
        VERIFIER.verify(forge(header(), payload), now=NOW)


# --- keys over time ----------------------------------------------------------------------


def _rotated(now: float) -> tuple[KeySet, SigningKey, SigningKey]:
    """A key set at ``now``: an old key retiring and a new one published before it signs."""
    old = generate_key("ES256", now=NOW - 3600, activates_at=NOW - 3600, kek=KEK)
    plan = plan_rotation(
        KeySet([old]),
        algs=["ES256"],
        now=now,
        kek=KEK,
        publish_delay=300,
        access_ttl=TTL,
        leeway=LEEWAY,
    )
    (retired,) = plan.retire
    old = SigningKey(retired, old.private_key, old.public_key)
    return KeySet([old, plan.new_key]), old, plan.new_key


def test_a_token_of_a_retired_key_verifies_until_it_expires() -> None:
    """The last token the old key signed stays valid for its whole life (spec §3 item 6)."""
    keys, old, new = _rotated(NOW)
    verifier = VERIFIER.with_keys(keys)
    retire_at = new.record.activates_at
    last = sign(old, now=retire_at - 1)
    assert verifier.verify(last, now=retire_at - 1 + TTL + LEEWAY - 0.001).sid == "sid-1"
    assert keys.signing_key(retire_at) is new


def test_a_token_signed_by_a_retired_and_expired_key_is_refused() -> None:
    """Once its key left the JWKS, even a token claiming a long life is refused."""
    keys, old, _ = _rotated(NOW)
    assert old.record.expires_at is not None
    long_lived = forge(header(old), claims(exp=int(NOW + 10**6)), key=old)
    verifier = VERIFIER.with_keys(keys)
    assert verifier.verify(long_lived, now=old.record.expires_at - 1)
    with pytest.raises(BadSignature, match="kid"):
        verifier.verify(long_lived, now=old.record.expires_at)


def test_with_keys_follows_a_rotation() -> None:
    """A verifier made before a rotation does not know the new key; with_keys() does."""
    keys, _, new = _rotated(NOW)
    token = sign(new, now=new.record.activates_at)
    with pytest.raises(BadSignature):
        VERIFIER.verify(token, now=new.record.activates_at)
    assert VERIFIER.with_keys(keys).verify(token, now=new.record.activates_at)


def test_a_service_verifies_with_the_published_jwks_alone() -> None:
    """Resource servers need only /.well-known/jwks.json: no private key, no store."""
    public = PublicKeySet.from_jwks(json.loads(json.dumps(KEY_SET.jwks(NOW))))
    verifier = AccessTokenVerifier(public, issuer=ISS, audience=AUD)
    for key in KEYS.values():
        assert verifier.verify(sign(key), now=NOW).client_id == "web"


# --- the primitives ----------------------------------------------------------------------


def test_verify_jws_checks_the_signature_but_leaves_typ_and_claims_to_the_caller() -> None:
    """verify_jws is the layer AccessTokenVerifier builds on: any payload, any typ."""
    token = forge(header(typ="JWT"), b"not claims")
    got = verify_jws(token, keys=KEY_SET, now=NOW)
    assert (got.payload, got.key, got.header["typ"]) == (
        b"not claims",
        ES256.verifying_key(),
        "JWT",
    )
    with pytest.raises(MalformedAccessToken, match="type"):
        verify_jws(token, keys=KEY_SET, now=NOW, typ={"at+jwt"})


def test_verify_signature_answers_false_rather_than_raising() -> None:
    """An unknown alg or a key of the wrong type verifies nothing, without an exception."""
    data = b"data"
    good = sign_bytes(ES256, data)
    assert verify_signature("ES256", ES256.public_key, data, good)
    assert not verify_signature("HS256", ES256.public_key, data, good)
    assert not verify_signature("none", ES256.public_key, data, b"")
    assert not verify_signature("RS256", ES256.public_key, data, good)
    assert not verify_signature("EdDSA", ES256.public_key, data, good)
    assert not verify_signature("ES256", KEYS["RS256"].public_key, data, good)


# --- fuzzing -----------------------------------------------------------------------------

FUZZ = settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
VALID = sign()
json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=20),
    lambda inner: (
        st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner, max_size=4)
    ),
    max_leaves=12,
)


@FUZZ
@given(st.text(max_size=600))
def test_arbitrary_text_only_ever_raises_invalid_token(text: str) -> None:
    """No text, however odd, escapes as ValueError, KeyError, TypeError or binascii.Error."""
    with pytest.raises(InvalidToken):
        VERIFIER.verify(text, now=NOW)


@FUZZ
@given(st.binary(max_size=600))
def test_arbitrary_bytes_are_malformed(data: bytes) -> None:
    """Bytes are not a token, and neither is their Latin-1 reading."""
    with pytest.raises(MalformedAccessToken):
        VERIFIER.verify(data, now=NOW)  # type: ignore[arg-type]
    with pytest.raises(InvalidToken):
        VERIFIER.verify(data.decode("latin-1"), now=NOW)


@FUZZ
@given(
    st.lists(
        st.tuples(
            st.integers(min_value=0, max_value=len(VALID) - 1),
            st.sampled_from(["delete", "insert", "replace"]),
            st.characters(codec="utf-8"),
        ),
        min_size=1,
        max_size=4,
    )
)
def test_a_mutated_token_never_raises_anything_but_invalid_token(
    edits: list[tuple[int, str, str]],
) -> None:
    """Deleting, inserting or replacing characters of a real token always makes it invalid."""
    token = list(VALID)
    for index, op, char in edits:
        index %= max(len(token), 1)
        if op == "delete" and token:
            del token[index]
        elif op == "insert":
            token.insert(index, char)
        elif token:
            token[index] = char
    mutated = "".join(token)
    if mutated == VALID:  # e.g. a character replaced by itself
        assert VERIFIER.verify(mutated, now=NOW)
    else:
        with pytest.raises(InvalidToken):
            VERIFIER.verify(mutated, now=NOW)


@FUZZ
@given(
    st.dictionaries(st.text(max_size=10), json_values, max_size=5),
    st.dictionaries(
        st.sampled_from(
            ["iss", "sub", "aud", "exp", "iat", "nbf", "jti", "client_id", "sid", "scope", "x"]
        ),
        json_values,
        max_size=6,
    ),
)
def test_signed_headers_and_claims_of_any_shape_are_handled(
    extra_header: dict[str, Any], changed_claims: dict[str, Any]
) -> None:
    """With a valid signature over arbitrary JSON, verify returns claims or InvalidToken."""
    head = {**extra_header, **header()}
    try:
        body = json.dumps(claims(**changed_claims), allow_nan=True).encode()
    except (ValueError, RecursionError):  # pragma: no cover - json.dumps limits
        return
    token = forge(head, body)
    try:
        got = VERIFIER.verify(token, now=NOW)
    except InvalidToken:
        return
    assert isinstance(got.sub, str) and got.sub
    assert got.exp > NOW - LEEWAY


def test_es256_signatures_are_raw_r_and_s_that_pyjwt_and_cryptography_verify() -> None:
    """keyfob's own ES256 path writes R‖S (64 bytes, RFC 7518 §3.4): the DER form of the
    same two integers verifies under cryptography, and PyJWT's ES256 accepts it as is."""
    from cryptography.hazmat.primitives import hashes
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.hazmat.primitives.asymmetric.utils import encode_dss_signature
    from jwt.algorithms import ECAlgorithm

    from keyfob.core.jws import sign_bytes
    from keyfob.core.keys import generate_key

    key = generate_key("ES256", now=0, activates_at=0, kek=b"k" * 32)
    public_key = key.public_key
    assert isinstance(public_key, ec.EllipticCurvePublicKey)
    for message in (b"", b"a.b", b"x" * 1000):
        signature = sign_bytes(key, message)
        assert len(signature) == 64
        r, s = int.from_bytes(signature[:32], "big"), int.from_bytes(signature[32:], "big")
        public_key.verify(encode_dss_signature(r, s), message, ec.ECDSA(hashes.SHA256()))
        assert ECAlgorithm(ECAlgorithm.SHA256).verify(message, public_key, signature)
