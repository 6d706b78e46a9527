"""Signing keys: kid, encryption at rest, publish-before-sign and retire-after-last-expiry."""

from __future__ import annotations

import base64
import dataclasses
import json
from collections.abc import Callable

import pytest
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, rsa
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

from keyfob.core.jwk import (
    ALGORITHMS,
    PublicKeySet,
    VerifyingKey,
    jwk_thumbprint,
    public_jwk,
    verifying_key_from_jwk,
)
from keyfob.core.keys import (
    KeyRecord,
    KeySet,
    SigningKey,
    derive_kek,
    generate_key,
    load_key,
    plan_rotation,
    purge_expired,
)
from keyfob.exceptions import ConfigurationError

KEK = derive_kek(b"k" * 32)
OTHER_KEK = derive_kek(b"o" * 32)
T0 = 1_700_000_000.0
TTL = 900.0
LEEWAY = 30.0
DELAY = 300.0

# RFC 7638 §3.1 and RFC 8037 appendix A.3: published keys with their published thumbprints.
RFC7638_RSA = {
    "kty": "RSA",
    "e": "AQAB",
    "n": (
        "0vx7agoebGcQSuuPiLJXZptN9nndrQmbXEps2aiAFbWhM78LhWx4cbbfAAtVT86zwu1RK7aPFFxuhDR1L6tSoc_B"
        "JECPebWKRXjBZCiFV4n3oknjhMstn64tZ_2W-5JsGY4Hc5n9yBXArwl93lqt7_RN5w6Cf0h4QyQ5v-65YGjQR0_F"
        "DW2QvzqY368QQMicAtaSqzs8KJZgnYb9c7d0zgdAZHzu6qMQvRL5hajrn1n91CbOpbISD08qNLyrdkt-bFTWhAI4"
        "vMQFh6WeZu0fM4lFd2NcRwr3XPksINHaQ-G_xBniIqbw0Ls1jF44-csFCur-kEgU8awapJzKnqDKgw"
    ),
}
RFC8037_ED25519 = {
    "kty": "OKP",
    "crv": "Ed25519",
    "x": "11qYAYKxCrfVS_7TyWQHOg7hcvPapiMlrwIaaPcHURo",
}


@pytest.fixture(scope="module")
def keys_by_alg() -> dict[str, SigningKey]:
    """One key per algorithm, made once: RSA generation is slow."""
    return {alg: generate_key(alg, now=T0, activates_at=T0, kek=KEK) for alg in ALGORITHMS}


def _private_der(key: SigningKey) -> bytes:
    return key.private_key.private_bytes(
        serialization.Encoding.DER,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )


def _secret_numbers(key: SigningKey) -> list[str]:
    """Every way a private key's secret could show up in text."""
    pk = key.private_key
    if isinstance(pk, ec.EllipticCurvePrivateKey):
        d = pk.private_numbers().private_value
        secret = d.to_bytes(32, "big")
        values = [str(d), hex(d)]
    elif isinstance(pk, ed25519.Ed25519PrivateKey):
        secret = pk.private_bytes(
            serialization.Encoding.Raw,
            serialization.PrivateFormat.Raw,
            serialization.NoEncryption(),
        )
        values = []
    else:
        assert isinstance(pk, rsa.RSAPrivateKey)
        numbers = pk.private_numbers()
        secret = numbers.d.to_bytes((numbers.d.bit_length() + 7) // 8, "big")
        values = [str(numbers.d), str(numbers.p)]
    return [
        *values,
        secret.hex(),
        base64.urlsafe_b64encode(secret).rstrip(b"=").decode(),
        repr(secret),
    ]


# --- kid and JWK -------------------------------------------------------------------------


def test_kid_is_the_rfc7638_thumbprint_of_the_rfc_example_rsa_key() -> None:
    """The kid of the RFC 7638 example key is the thumbprint that RFC publishes."""
    key = verifying_key_from_jwk(RFC7638_RSA)
    assert key.kid == "NzbLsXh8uDCcd-6MNwXF4W_7noWXFZAfHkxZsRGC9Xs"
    assert jwk_thumbprint(key.public_key) == key.kid


def test_kid_is_the_rfc8037_thumbprint_of_the_rfc_example_ed25519_key() -> None:
    """Ed25519 thumbprints hash crv, kty and x, as RFC 8037 appendix A.3 shows."""
    key = verifying_key_from_jwk(RFC8037_ED25519)
    assert key.kid == "kPrK_qmxVWaYVA9wwBF6Iuo3vVzz7TxHCTwXBygrS4k"


@pytest.mark.parametrize("alg", ALGORITHMS)
def test_generated_key_publishes_a_public_jwk_named_by_its_thumbprint(
    alg: str, keys_by_alg: dict[str, SigningKey]
) -> None:
    """A new key's kid is its thumbprint and its JWK carries kid, alg, use=sig, no secret."""
    key = keys_by_alg[alg]
    jwk = json.loads(key.record.public_jwk)
    assert key.kid == key.record.kid == jwk["kid"] == jwk_thumbprint(key.public_key)
    assert (key.alg, jwk["alg"], jwk["use"]) == (alg, alg, "sig")
    assert jwk == public_jwk(key.public_key, alg)
    assert not {"d", "p", "q", "dp", "dq", "qi", "k"} & set(jwk)
    # What we publish is what a verifier imports back.
    assert verifying_key_from_jwk(jwk) == key.verifying_key()


@pytest.mark.parametrize("alg", ["HS256", "none", "ES384", "PS256", ""])
def test_generate_refuses_algorithms_outside_the_allow_list(alg: str) -> None:
    """Only ES256, Ed25519 (EdDSA) and RS256 keys can be made."""
    with pytest.raises(ConfigurationError):
        generate_key(alg, now=T0, activates_at=T0, kek=KEK)


def test_a_key_cannot_sign_before_it_is_published() -> None:
    """activates_at earlier than now would let a key sign before any JWKS shows it."""
    with pytest.raises(ValueError, match="before it is published"):
        generate_key("ES256", now=T0, activates_at=T0 - 1, kek=KEK)


# --- encryption at rest ------------------------------------------------------------------


def test_derive_kek_is_hkdf_sha256_with_its_own_label() -> None:
    """The KEK is HKDF-SHA256(secret, info="keyfob signing-key encryption v1"), 32 bytes."""
    secret = b"s" * 32
    expected = HKDF(
        algorithm=hashes.SHA256(), length=32, salt=None, info=b"keyfob signing-key encryption v1"
    ).derive(secret)
    assert derive_kek(secret) == expected
    assert derive_kek(b"t" * 32) != expected


def test_derive_kek_refuses_a_short_deployment_secret() -> None:
    """A deployment secret under 32 bytes is a configuration error, as for the MAC key."""
    with pytest.raises(ConfigurationError):
        derive_kek(b"short")


@pytest.mark.parametrize("alg", ALGORITHMS)
def test_load_key_decrypts_what_generate_key_stored(
    alg: str, keys_by_alg: dict[str, SigningKey]
) -> None:
    """A stored record loads back into the same private key."""
    key = keys_by_alg[alg]
    loaded = load_key(key.record, kek=KEK)
    assert loaded.record == key.record
    assert _private_der(loaded) == _private_der(key)
    assert loaded.verifying_key() == key.verifying_key()


@pytest.mark.parametrize("alg", ALGORITHMS)
def test_the_record_holds_no_private_key_in_clear(
    alg: str, keys_by_alg: dict[str, SigningKey]
) -> None:
    """Neither the DER private key nor its secret numbers appear in what the store keeps."""
    key = keys_by_alg[alg]
    stored = key.record.private_encrypted + key.record.public_jwk.encode()
    assert _private_der(key) not in stored
    for text in _secret_numbers(key):
        assert text.encode() not in stored


@pytest.mark.parametrize("alg", ALGORITHMS)
def test_repr_of_keys_and_records_shows_no_key_material(
    alg: str, keys_by_alg: dict[str, SigningKey]
) -> None:
    """Logging a SigningKey or KeyRecord by accident leaks neither secret nor ciphertext."""
    key = keys_by_alg[alg]
    for text in (repr(key), repr(key.record), str(key), repr(key.verifying_key())):
        assert key.kid in text
        for secret in _secret_numbers(key):
            assert secret not in text
        assert repr(key.record.private_encrypted) not in text
        assert key.record.private_encrypted.hex() not in text


def test_a_wrong_kek_is_a_configuration_error(keys_by_alg: dict[str, SigningKey]) -> None:
    """A record stored under another deployment secret does not load."""
    with pytest.raises(ConfigurationError, match="cannot decrypt"):
        load_key(keys_by_alg["ES256"].record, kek=OTHER_KEK)


def test_a_kek_of_the_wrong_size_is_a_configuration_error(
    keys_by_alg: dict[str, SigningKey],
) -> None:
    """The KEK is an AES-256 key: 32 bytes exactly."""
    with pytest.raises(ConfigurationError):
        load_key(keys_by_alg["ES256"].record, kek=KEK[:16])
    with pytest.raises(ConfigurationError):
        generate_key("ES256", now=T0, activates_at=T0, kek=b"")


@pytest.mark.parametrize(
    "tamper",
    [
        pytest.param(
            lambda r, o: dataclasses.replace(
                r, private_encrypted=r.private_encrypted[:-1] + bytes([r.private_encrypted[-1] ^ 1])
            ),
            id="flipped-ciphertext-bit",
        ),
        pytest.param(
            lambda r, o: dataclasses.replace(r, private_encrypted=r.private_encrypted[:20]),
            id="truncated-ciphertext",
        ),
        pytest.param(
            lambda r, o: dataclasses.replace(r, private_encrypted=b""), id="empty-ciphertext"
        ),
        pytest.param(
            lambda r, o: dataclasses.replace(r, private_encrypted=o.private_encrypted),
            id="ciphertext-moved-from-another-row",
        ),
        pytest.param(lambda r, o: dataclasses.replace(r, kid=o.kid), id="kid-changed"),
        pytest.param(lambda r, o: dataclasses.replace(r, alg="EdDSA"), id="alg-changed"),
        pytest.param(lambda r, o: dataclasses.replace(r, alg="HS256"), id="alg-unsupported"),
        pytest.param(
            lambda r, o: dataclasses.replace(r, public_jwk=o.public_jwk),
            id="public-jwk-swapped",
        ),
        pytest.param(
            lambda r, o: dataclasses.replace(r, public_jwk="not json"), id="public-jwk-garbage"
        ),
    ],
)
def test_a_tampered_record_does_not_load(
    tamper: Callable[[KeyRecord, KeyRecord], KeyRecord], keys_by_alg: dict[str, SigningKey]
) -> None:
    """Edited ciphertext, kid, alg or public JWK is refused (AES-GCM with kid+alg as AAD)."""
    other = generate_key("ES256", now=T0, activates_at=T0, kek=KEK).record
    with pytest.raises(ConfigurationError):
        load_key(tamper(keys_by_alg["ES256"].record, other), kek=KEK)


def test_a_key_whose_type_does_not_match_its_alg_is_refused(
    keys_by_alg: dict[str, SigningKey],
) -> None:
    """A SigningKey or VerifyingKey cannot pair an EC key with another algorithm."""
    ec_key = keys_by_alg["ES256"]
    with pytest.raises(ConfigurationError):
        SigningKey(
            dataclasses.replace(ec_key.record, alg="EdDSA"), ec_key.private_key, ec_key.public_key
        )
    with pytest.raises(ConfigurationError):
        VerifyingKey(ec_key.kid, "RS256", ec_key.public_key)


# --- key sets ----------------------------------------------------------------------------


def _key(activates_at: float, **changes: float | None) -> SigningKey:
    key = generate_key("ES256", now=min(activates_at, T0), activates_at=activates_at, kek=KEK)
    return dataclasses.replace(key, record=dataclasses.replace(key.record, **changes))


def test_the_newest_active_key_signs() -> None:
    """Of several keys able to sign, the one activated last is used."""
    old, new = _key(T0), _key(T0 + 10)
    keys = KeySet([new, old])
    assert keys.signing_key(T0 + 5) is old
    assert keys.signing_key(T0 + 10) is new
    assert keys.keys == (new, old)


def test_an_empty_key_set_needs_a_key_and_cannot_sign() -> None:
    """With no key, needs_key says so and signing_key is a configuration error."""
    keys = KeySet([])
    assert keys.needs_key(T0)
    assert keys.jwks(T0) == {"keys": []}
    with pytest.raises(ConfigurationError):
        keys.signing_key(T0)


def test_a_key_set_refuses_two_keys_with_one_kid() -> None:
    """Two rows with the same kid would make verification ambiguous."""
    key = _key(T0)
    with pytest.raises(ConfigurationError):
        KeySet([key, key])


def test_get_finds_a_key_by_kid_published_or_not() -> None:
    """get() is a plain lookup; verifying_key() also requires the key to be published."""
    gone = _key(T0, retired_at=T0 + 1, expires_at=T0 + 2)
    keys = KeySet([gone])
    assert keys.get(gone.kid) is gone
    assert keys.get("nope") is None
    assert keys.verifying_key(gone.kid, T0 + 1) == gone.verifying_key()
    assert keys.verifying_key(gone.kid, T0 + 2) is None
    assert keys.verifying_key("nope", T0) is None


def test_a_key_is_not_published_before_it_is_created() -> None:
    """created_at bounds publication from below (a key from the future verifies nothing)."""
    later = generate_key("ES256", now=T0 + 100, activates_at=T0 + 100, kek=KEK)
    keys = KeySet([later])
    assert keys.published(T0) == []
    assert keys.verifying_key(later.kid, T0) is None
    assert keys.published(T0 + 100) == [later]


# --- rotation ----------------------------------------------------------------------------


def _rotate(keys: KeySet, now: float) -> tuple[SigningKey, list[KeyRecord]]:
    plan = plan_rotation(
        keys, algs=["ES256"], now=now, kek=KEK, publish_delay=DELAY, access_ttl=TTL, leeway=LEEWAY
    )
    return plan.new_key, plan.retire


def _apply(keys: KeySet, new: SigningKey, retire: list[KeyRecord]) -> KeySet:
    retired = {r.kid: r for r in retire}
    kept = [
        dataclasses.replace(k, record=retired[k.kid]) if k.kid in retired else k for k in keys.keys
    ]
    return KeySet([*kept, new])


def _kids(jwks: dict[str, object]) -> set[str]:
    entries = jwks["keys"]
    assert isinstance(entries, list)
    return {entry["kid"] for entry in entries}


def test_first_boot_key_signs_at_once() -> None:
    """With nothing able to sign there is no cache to wait for: the key activates now."""
    new, retire = _rotate(KeySet([]), T0)
    assert retire == []
    assert new.record.created_at == new.record.activates_at == T0
    assert KeySet([new]).signing_key(T0) is new


def test_a_rotated_in_key_is_published_before_it_signs() -> None:
    """Publish-before-sign: the new key is in the JWKS for publish_delay before signing."""
    first, _ = _rotate(KeySet([]), T0)
    keys = KeySet([first])
    now = T0 + 3600
    second, retire = _rotate(keys, now)
    keys = _apply(keys, second, retire)

    assert second.record.activates_at == now + DELAY
    assert _kids(keys.jwks(now)) == {first.kid, second.kid}
    assert keys.signing_key(now) is not second
    assert keys.signing_key(now + DELAY - 0.001).kid == first.kid
    assert keys.signing_key(now + DELAY) is second
    assert not keys.needs_key(now)


def test_a_retired_key_stays_published_until_its_last_token_expired() -> None:
    """The old key verifies until retired_at + access_ttl + leeway, then leaves the JWKS."""
    first, _ = _rotate(KeySet([]), T0)
    keys = KeySet([first])
    now = T0 + 3600
    second, retire = _rotate(keys, now)
    keys = _apply(keys, second, retire)

    (old,) = retire
    assert old.kid == first.kid
    assert old.retired_at == now + DELAY
    assert old.expires_at == now + DELAY + TTL + LEEWAY

    # The last token the old key signed was issued just before retired_at.
    last_token_dead = old.retired_at + TTL + LEEWAY
    assert first.kid in _kids(keys.jwks(last_token_dead - 0.001))
    assert keys.verifying_key(first.kid, last_token_dead - 0.001) is not None
    assert _kids(keys.jwks(last_token_dead)) == {second.kid}
    assert keys.verifying_key(first.kid, last_token_dead) is None
    assert purge_expired([old, second.record], last_token_dead - 0.001) == []
    assert purge_expired([old, second.record], last_token_dead) == [first.kid]


def test_a_second_rotation_retires_a_key_that_has_not_started_signing() -> None:
    """A key not yet signing is retired too, so it never lingers in the JWKS unexpired."""
    first, _ = _rotate(KeySet([]), T0)
    keys = KeySet([first])
    pending, retire = _rotate(keys, T0 + 10)
    keys = _apply(keys, pending, retire)
    newest, retire = _rotate(keys, T0 + 20)

    (retired,) = retire
    assert retired.kid == pending.kid
    assert retired.retired_at == newest.record.activates_at == T0 + 20 + DELAY
    assert retired.expires_at == T0 + 20 + DELAY + TTL + LEEWAY
    keys = _apply(keys, newest, retire)
    # The first key keeps its earlier retirement; the pending key signs only in between.
    assert keys.signing_key(T0 + 10 + DELAY - 1).kid == first.kid
    assert keys.signing_key(T0 + 10 + DELAY).kid == pending.kid
    assert keys.signing_key(T0 + 20 + DELAY) is newest


def test_rotation_keeps_an_earlier_retirement() -> None:
    """A key already retired keeps its dates; only keys still signing later are retired."""
    done = _key(T0, retired_at=T0 + 5, expires_at=T0 + 5 + TTL + LEEWAY)
    active = _key(T0 + 5)
    _, retire = _rotate(KeySet([done, active]), T0 + 100)
    assert [r.kid for r in retire] == [active.kid]


def test_a_rotation_after_every_key_retired_signs_at_once() -> None:
    """When no key can sign (all retired), the new key activates immediately."""
    done = _key(T0, retired_at=T0 + 5, expires_at=T0 + 5 + TTL + LEEWAY)
    keys = KeySet([done])
    assert keys.needs_key(T0 + 10)
    new, retire = _rotate(keys, T0 + 10)
    assert new.record.activates_at == T0 + 10
    assert retire == []


# --- a key per algorithm: access tokens and id tokens ---------------------------------------


def _plan(keys: KeySet, now: float, algs: list[str], only: list[str] | None = None) -> KeySet:
    """``keys`` after a rotation of ``algs`` (or ``only`` of them) at ``now``."""
    plan = plan_rotation(
        keys,
        algs=algs,
        only=only,
        now=now,
        kek=KEK,
        publish_delay=DELAY,
        access_ttl=TTL,
        leeway=LEEWAY,
    )
    assert [key.alg for key in plan.new_keys] == (only or algs)
    assert plan.new_key is plan.new_keys[0]
    retired = {r.kid: r for r in plan.retire}
    kept = [
        dataclasses.replace(k, record=retired[k.kid]) if k.kid in retired else k for k in keys.keys
    ]
    return KeySet([*kept, *plan.new_keys])


def test_each_algorithm_has_its_own_signing_key() -> None:
    """With two algorithms, each signature takes the newest key of its own algorithm."""
    keys = _plan(KeySet([]), T0, ["ES256", "Ed25519"])
    assert keys.algorithms == {"ES256", "Ed25519"}
    assert keys.signing_key(T0, "ES256").alg == "ES256"
    assert keys.signing_key(T0, "Ed25519").alg == "Ed25519"
    assert not keys.needs_key(T0, "ES256") and not keys.needs_key(T0, "Ed25519")
    assert keys.needs_key(T0, "RS256")
    with pytest.raises(ConfigurationError, match="no RS256 signing key"):
        keys.signing_key(T0, "RS256")
    assert len(_kids(keys.jwks(T0))) == 2


def test_a_rotation_renews_every_algorithm_without_downtime() -> None:
    """Each algorithm gets a new key published before it signs; each old key retires when
    the new key of its own algorithm starts signing."""
    keys = _plan(KeySet([]), T0, ["ES256", "Ed25519"])
    before = {alg: keys.signing_key(T0, alg) for alg in ("ES256", "Ed25519")}
    now = T0 + 3600
    keys = _plan(keys, now, ["ES256", "Ed25519"])
    for alg, old in before.items():
        assert keys.signing_key(now + DELAY - 0.001, alg).kid == old.kid
        new = keys.signing_key(now + DELAY, alg)
        assert new.kid != old.kid and new.alg == alg
        retired = keys.get(old.kid)
        assert retired is not None and retired.record.retired_at == now + DELAY


def test_a_newly_configured_algorithm_gets_a_key_that_signs_at_once() -> None:
    """Adding an id-token algorithm makes its first key only, signing now; the access
    tokens' key is left as it is."""
    keys = _plan(KeySet([]), T0, ["ES256"])
    es256 = keys.signing_key(T0, "ES256")
    keys = _plan(keys, T0 + 10, ["ES256", "Ed25519"], only=["Ed25519"])
    assert keys.signing_key(T0 + 10, "Ed25519").record.activates_at == T0 + 10
    assert keys.signing_key(T0 + 10**6, "ES256") is es256
    assert es256.record.retired_at is None


def test_an_algorithm_no_longer_configured_stops_signing_now() -> None:
    """Switching EdDSA to its RFC 9864 name Ed25519: the EdDSA key retires at once (still
    published while its tokens live) and a new Ed25519 key signs from now."""
    keys = _plan(KeySet([]), T0, ["EdDSA"])
    old = keys.signing_key(T0, "EdDSA")
    keys = _plan(keys, T0 + 10, ["Ed25519"])
    retired = keys.get(old.kid)
    assert retired is not None
    assert retired.record.retired_at == T0 + 10
    assert retired.record.expires_at == T0 + 10 + TTL + LEEWAY
    assert keys.needs_key(T0 + 10, "EdDSA")
    assert keys.signing_key(T0 + 10, "Ed25519").record.activates_at == T0 + 10
    assert old.kid in _kids(keys.jwks(T0 + 10 + TTL))


def test_a_rotation_makes_at_least_one_key() -> None:
    """``only`` naming no configured algorithm is a mistake, not an empty rotation."""
    with pytest.raises(ValueError, match="at least one key"):
        plan_rotation(
            KeySet([]),
            algs=["ES256"],
            only=["RS256"],
            now=T0,
            kek=KEK,
            publish_delay=DELAY,
            access_ttl=TTL,
            leeway=LEEWAY,
        )


@pytest.mark.parametrize("alg", ["Ed25519", "EdDSA"])
def test_ed25519_keys_under_either_name(alg: str) -> None:
    """Ed25519 (RFC 9864) and EdDSA both make Ed25519 keys, published under that name."""
    key = generate_key(alg, now=T0, activates_at=T0, kek=KEK)
    assert isinstance(key.private_key, ed25519.Ed25519PrivateKey)
    jwk = json.loads(key.record.public_jwk)
    assert jwk["alg"] == alg and jwk["crv"] == "Ed25519"
    assert verifying_key_from_jwk(jwk).alg == alg
    assert load_key(key.record, kek=KEK).alg == alg


def test_rotation_refuses_negative_durations() -> None:
    """A negative delay, lifetime or leeway would break publish-before-sign."""
    with pytest.raises(ValueError, match="negative"):
        plan_rotation(
            KeySet([]), algs=["ES256"], now=T0, kek=KEK, publish_delay=-1, access_ttl=TTL, leeway=0
        )


def test_purge_never_names_a_key_without_expiry() -> None:
    """Keys that were never retired are never purged."""
    assert purge_expired([_key(T0).record], T0 + 10**9) == []


# --- verifying from a JWKS ---------------------------------------------------------------


def test_a_public_key_set_imports_our_own_jwks(keys_by_alg: dict[str, SigningKey]) -> None:
    """A verifying service rebuilds exactly our public keys from the published JWKS."""
    keys = KeySet(list(keys_by_alg.values()))
    public = PublicKeySet.from_jwks(keys.jwks(T0))
    assert len(public) == len(ALGORITHMS)
    for key in keys_by_alg.values():
        assert public.verifying_key(key.kid, T0) == key.verifying_key()
    assert public.verifying_key("unknown", T0) is None


def test_a_jwk_without_alg_or_kid_gets_them_from_its_key() -> None:
    """alg is inferred from kty/crv (an Ed25519 key by its RFC 9864 name, which verifies
    tokens naming EdDSA too), and kid defaults to the thumbprint."""
    key = verifying_key_from_jwk(RFC8037_ED25519)
    assert key.alg == "Ed25519"
    assert verifying_key_from_jwk(RFC7638_RSA).alg == "RS256"


def _ec_jwk() -> dict[str, object]:
    return dict(
        json.loads(generate_key("ES256", now=T0, activates_at=T0, kek=KEK).record.public_jwk)
    )


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def _off_curve(jwk: dict[str, object]) -> dict[str, object]:
    y = int.from_bytes(base64.urlsafe_b64decode(str(jwk["y"]) + "="), "big")
    return {**jwk, "y": _b64(((y + 1) % 2**256).to_bytes(32, "big"))}


def _non_canonical(jwk: dict[str, object]) -> dict[str, object]:
    # 43 characters encode 32 bytes; the last one has 2 unused bits that must be zero.
    alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"
    x = str(jwk["x"])
    return {**jwk, "x": x[:-1] + alphabet[alphabet.index(x[-1]) + 1]}


@pytest.mark.parametrize(
    ("change", "match"),
    [
        pytest.param(lambda j: {**j, "d": "AAAA"}, "private or symmetric", id="private-member"),
        pytest.param(lambda j: {**j, "k": "AAAA"}, "private or symmetric", id="symmetric-key"),
        pytest.param(lambda j: {**j, "use": "enc"}, "not for signatures", id="use-enc"),
        pytest.param(
            lambda j: {**j, "key_ops": ["encrypt"]}, "not for verifying", id="key-ops-encrypt"
        ),
        pytest.param(lambda j: {**j, "key_ops": "verify"}, "not for verifying", id="key-ops-text"),
        pytest.param(lambda j: {**j, "alg": "HS256"}, "is not one of", id="alg-hs256"),
        pytest.param(lambda j: {**j, "alg": "none"}, "is not one of", id="alg-none"),
        pytest.param(lambda j: {**j, "alg": "ES384"}, "is not one of", id="alg-es384"),
        pytest.param(lambda j: {**j, "alg": "EdDSA"}, "OKP Ed25519", id="alg-of-other-kty"),
        pytest.param(lambda j: {**j, "crv": "P-384"}, "EC P-256", id="wrong-curve"),
        pytest.param(lambda j: {**j, "kty": "RSA"}, "EC P-256", id="wrong-kty"),
        pytest.param(lambda j: {**j, "x": "AAAA"}, "EC P-256", id="short-coordinate"),
        pytest.param(lambda j: {**j, "x": 12}, "not base64url", id="coordinate-not-text"),
        pytest.param(lambda j: {**j, "x": f"{j['x']}="}, "not base64url", id="padded-base64"),
        pytest.param(_non_canonical, "not canonical", id="non-canonical-base64"),
        pytest.param(_off_curve, "not a valid ES256", id="point-off-the-curve"),
        pytest.param(lambda j: {**j, "kid": ""}, "non-empty", id="empty-kid"),
        pytest.param(lambda j: {**j, "kid": 7}, "non-empty", id="kid-not-text"),
    ],
)
def test_an_unusable_jwk_is_refused(
    change: Callable[[dict[str, object]], dict[str, object]], match: str
) -> None:
    """Symmetric, private, encryption, weak or malformed keys never become verifying keys."""
    with pytest.raises(ConfigurationError, match=match):
        verifying_key_from_jwk(change(_ec_jwk()))


def test_a_small_rsa_key_is_refused() -> None:
    """RSA keys under 2048 bits do not verify anything."""
    # A weak key on purpose: the point of the test (S505).
    small = rsa.generate_private_key(public_exponent=65537, key_size=1024).public_key()  # noqa: S505
    n = small.public_numbers().n
    jwk = {
        "kty": "RSA",
        "e": "AQAB",
        "n": base64.urlsafe_b64encode(n.to_bytes(128, "big")).rstrip(b"=").decode(),
    }
    with pytest.raises(ConfigurationError, match="2048"):
        verifying_key_from_jwk(jwk)


@pytest.mark.parametrize(
    "document",
    [
        pytest.param([], id="not-an-object"),
        pytest.param({}, id="no-keys"),
        pytest.param({"keys": {}}, id="keys-not-a-list"),
        pytest.param({"keys": ["x"]}, id="key-not-an-object"),
    ],
)
def test_a_malformed_jwks_is_refused(document: object) -> None:
    """A JWK Set must be an object with a list of JWK objects."""
    with pytest.raises(ConfigurationError):
        PublicKeySet.from_jwks(document)  # type: ignore[arg-type]


def test_a_jwks_with_two_keys_under_one_kid_is_refused() -> None:
    """Duplicate kids make the verifying key ambiguous, so the whole set is refused."""
    one, two = _ec_jwk(), _ec_jwk()
    two["kid"] = one["kid"]
    with pytest.raises(ConfigurationError, match="share the kid"):
        PublicKeySet.from_jwks({"keys": [one, two]})
