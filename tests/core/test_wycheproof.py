"""Project Wycheproof vectors against the code paths keyfob uses to verify tokens.

- ECDSA P-256 (P1363, i.e. JWS R‖S) and Ed25519 signatures go through
  :func:`~keyfob.core.access_tokens.verify_signature`, the primitive every token
  verification calls: every ``valid`` case verifies, every ``invalid`` one does not.
- JWS and JWK cases go through :func:`~keyfob.core.jwk.verifying_key_from_jwk` /
  :meth:`~keyfob.core.jwk.PublicKeySet.from_jwks` and then
  :func:`~keyfob.core.access_tokens.verify_jws`, the layer under
  ``AccessTokenVerifier`` (these JWS are not ``at+jwt`` tokens, so the RFC 9068 ``typ``
  and claim checks do not apply). Every ``invalid`` case is refused, at key loading
  (``ConfigurationError``) or at verification (``InvalidToken``). A ``valid`` case
  verifies when its algorithm is one keyfob allows (ES256, EdDSA, RS256) and is refused
  otherwise: keyfob's allow-list excludes HS*, PS*, RS384/512, ES384/512 on purpose.
- ``acceptable`` cases: the copied files have none. If an update brings some, loading
  fails so that someone decides, case by case, what keyfob should do with them.

The vectors live outside the repository, in ``../shared/vectors/wycheproof`` (or under
``$KEYFOB_SHARED_DIR``); without them this module skips, and fails in CI.
"""

from __future__ import annotations

import base64
import binascii
import json
import os
from pathlib import Path
from typing import Any

import pytest
from cryptography.hazmat.primitives.asymmetric import ec, ed25519
from cryptography.hazmat.primitives.serialization import load_der_public_key

from keyfob.core.jwk import ALGORITHMS, PublicKeySet, verifying_key_from_jwk
from keyfob.core.jws import verify_jws, verify_signature
from keyfob.exceptions import ConfigurationError, InvalidToken
from tests.services import unavailable


def _vectors_dir() -> Path:
    shared = os.environ.get("KEYFOB_SHARED_DIR")
    base = Path(shared) if shared else Path(__file__).parents[2].parent / "shared"
    path = base / "vectors" / "wycheproof"
    if not path.is_dir():
        unavailable(
            f"Wycheproof vectors not found at {path} (set KEYFOB_SHARED_DIR)",
            allow_module_level=True,
        )
    return path


VECTORS = _vectors_dir()


def _load(name: str) -> dict[str, Any]:
    data: dict[str, Any] = json.loads((VECTORS / name).read_text())
    results = {t["result"] for g in data["testGroups"] for t in g["tests"]}
    # A new "acceptable" case needs a decision, not a silent pass either way.
    assert results <= {"valid", "invalid"}, f"{name}: unhandled results {results}"
    return data


def _cases(name: str, group_type: str) -> list[Any]:
    """One pytest param per test case: (group, case), id ``tc<N>-<result>-<comment>``."""
    params = []
    for group in _load(name)["testGroups"]:
        assert group["type"] == group_type, f"{name}: unexpected group {group['type']}"
        for case in group["tests"]:
            comment = case["comment"].replace(" ", "_")[:40] or "-"
            params.append(
                pytest.param(group, case, id=f"tc{case['tcId']}-{case['result']}-{comment}")
            )
    return params


# --- raw signatures through verify_signature ---------------------------------------------


@pytest.mark.parametrize(
    ("group", "case"), _cases("ecdsa_secp256r1_sha256_p1363_test.json", "EcdsaP1363Verify")
)
def test_ecdsa_p256_p1363(group: dict[str, Any], case: dict[str, Any]) -> None:
    """ES256 signature vectors: valid ones verify, invalid ones (range, size, zero) do not."""
    assert (group["publicKey"]["curve"], group["sha"]) == ("secp256r1", "SHA-256")
    key = load_der_public_key(bytes.fromhex(group["publicKeyDer"]))
    assert isinstance(key, ec.EllipticCurvePublicKey)
    verified = verify_signature(
        "ES256", key, bytes.fromhex(case["msg"]), bytes.fromhex(case["sig"])
    )
    assert verified is (case["result"] == "valid")


@pytest.mark.parametrize(("group", "case"), _cases("ed25519_test.json", "EddsaVerify"))
def test_ed25519(group: dict[str, Any], case: dict[str, Any]) -> None:
    """EdDSA signature vectors, including malleable and non-canonical encodings."""
    assert group["publicKey"]["curve"] == "edwards25519"
    key = ed25519.Ed25519PublicKey.from_public_bytes(bytes.fromhex(group["publicKey"]["pk"]))
    verified = verify_signature(
        "EdDSA", key, bytes.fromhex(case["msg"]), bytes.fromhex(case["sig"])
    )
    assert verified is (case["result"] == "valid")


# --- JWS and JWK through key loading and verify_jws ---------------------------------------


def _jws_alg(jws: object) -> object:
    """The alg a compact JWS header names, or None when there is no readable header."""
    if not isinstance(jws, str) or "." not in jws:
        return None
    segment = jws.split(".", 1)[0]
    try:
        head = json.loads(base64.urlsafe_b64decode(segment + "=" * (-len(segment) % 4)))
    except (ValueError, binascii.Error):
        return None
    return head.get("alg") if isinstance(head, dict) else None


def _expect(case: dict[str, Any]) -> bool:
    """Whether keyfob must accept the case: valid, and signed with an alg it allows."""
    return case["result"] == "valid" and _jws_alg(case["jws"]) in ALGORITHMS


def _outcome(load_keys: Any, jws: object) -> bool:
    """True if the key loads and the JWS verifies; False if either is refused."""
    try:
        keys = load_keys()
    except ConfigurationError:
        return False
    try:
        verify_jws(jws, keys=keys, now=0.0)
    except InvalidToken:
        return False
    return True


@pytest.mark.parametrize(
    ("group", "case"), _cases("json_web_signature_test.json", "JsonWebSignature")
)
def test_json_web_signature(group: dict[str, Any], case: dict[str, Any]) -> None:
    """JWS vectors: keyfob verifies the valid ES256/RS256 ones and refuses everything else."""
    jwk = group.get("public", group["private"])
    accepted = _outcome(lambda: PublicKeySet([verifying_key_from_jwk(jwk)]), case["jws"])
    assert accepted is _expect(case)


@pytest.mark.parametrize(("group", "case"), _cases("json_web_key_test.json", "JsonWebKey"))
def test_json_web_key(group: dict[str, Any], case: dict[str, Any]) -> None:
    """JWK Set vectors: mixed, duplicate-kid, weak, ROCA and misused keys are refused."""
    jwks = group.get("public", group["private"])
    accepted = _outcome(lambda: PublicKeySet.from_jwks(jwks), case["jws"])
    assert accepted is _expect(case)


def test_the_vectors_exercise_both_outcomes() -> None:
    """Guard: some JWS/JWK cases must be accepted and many refused, or the tests prove nothing."""
    cases = [
        case
        for name in ("json_web_signature_test.json", "json_web_key_test.json")
        for group in _load(name)["testGroups"]
        for case in group["tests"]
    ]
    accepted = [c for c in cases if _expect(c)]
    assert {_jws_alg(c["jws"]) for c in accepted} == {"ES256", "RS256"}
    assert len(accepted) == 11
    assert len(cases) - len(accepted) == 416
