"""Sign and verify one typical RFC 9068 access token with PyJWT, joserfc and keyfob.

Every contender gets a key object prepared once, outside the timed loop, so the numbers
show what a library adds per call on top of the raw ``cryptography`` operation on the
same bytes (the floor). Run::

    .venv/bin/python bench/jose_compare.py [--quick]

It prints one table per algorithm: microseconds per call (the best of several
repeats, as ``timeit`` advises) and the ratio to the raw operation. docs/dependencies.md
quotes these numbers; rerun this script when either library or ``cryptography`` changes.
"""

from __future__ import annotations

import argparse
import json
import platform
import sys
import time
import timeit
from collections.abc import Callable
from pathlib import Path
from typing import Any

import cryptography
import joserfc
import jwt
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, padding, rsa
from cryptography.hazmat.primitives.asymmetric.utils import (
    decode_dss_signature,
    encode_dss_signature,
)
from joserfc import jwk as jrfc_jwk
from joserfc import jwt as jrfc_jwt
from joserfc.jwt import JWTClaimsRegistry

try:
    import keyfob  # noqa: F401  (only to know whether it is importable as installed)
except ImportError:  # a plain checkout: measure the source tree
    sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))

from keyfob.core.access_tokens import AccessTokenSigner, AccessTokenVerifier
from keyfob.core.keys import KeySet, SigningKey, generate_key

# PyJWT reads the wall clock itself, so the tokens are issued "now".
NOW = int(time.time())
ISSUER = "https://auth.example.com"
AUDIENCE = "https://api.example.com"
TTL = 900


def claims() -> dict[str, Any]:
    """The claims keyfob puts in every access token (spec §2), with realistic sizes."""
    return {
        "iss": ISSUER,
        "sub": "user_7c1f0e52a9d84b6f",
        "aud": AUDIENCE,
        "exp": NOW + TTL,
        "iat": NOW,
        "jti": "bW9ja2p0aS0xMjM0NTY3OA",
        "client_id": "web-app",
        "sid": "c2Vzc2lvbi1pZC0xMjM0NQ",
        "scope": "openid profile email",
    }


def best_us(fn: Callable[[], object], number: int, repeat: int) -> float:
    """Microseconds per call: the fastest of ``repeat`` runs of ``number`` calls."""
    fn()  # warm up caches and lazy imports outside the timing
    return min(timeit.repeat(fn, number=number, repeat=repeat)) / number * 1e6


def raw_ops(sk: SigningKey, message: bytes) -> tuple[Callable[[], object], Callable[[], object]]:
    """The floor: ``cryptography`` signing and verifying the token's signing input."""
    priv, pub = sk.private_key, sk.public_key
    if isinstance(priv, ec.EllipticCurvePrivateKey):
        assert isinstance(pub, ec.EllipticCurvePublicKey)
        ecdsa = ec.ECDSA(hashes.SHA256())
        der = priv.sign(message, ecdsa)
        # Round-trip through R||S so the floor includes the same DER conversion a JWS
        # verifier has to do; without it the comparison would be unfair to every library.
        r, s = decode_dss_signature(der)
        p1363 = r.to_bytes(32, "big") + s.to_bytes(32, "big")

        def ec_verify() -> None:
            pub.verify(
                encode_dss_signature(
                    int.from_bytes(p1363[:32], "big"), int.from_bytes(p1363[32:], "big")
                ),
                message,
                ecdsa,
            )

        return (lambda: priv.sign(message, ecdsa)), ec_verify
    if isinstance(priv, ed25519.Ed25519PrivateKey):
        assert isinstance(pub, ed25519.Ed25519PublicKey)
        sig = priv.sign(message)
        return (lambda: priv.sign(message)), (lambda: pub.verify(sig, message))
    assert isinstance(priv, rsa.RSAPrivateKey)
    assert isinstance(pub, rsa.RSAPublicKey)
    pkcs1, sha256 = padding.PKCS1v15(), hashes.SHA256()
    sig = priv.sign(message, pkcs1, sha256)
    return (lambda: priv.sign(message, pkcs1, sha256)), (
        lambda: pub.verify(sig, message, pkcs1, sha256)
    )


def measure(alg: str, number: int, repeat: int) -> list[tuple[str, float, float]]:
    """(contender, sign µs, verify µs) for one algorithm."""
    sk = generate_key(alg, now=NOW, activates_at=NOW, kek=b"\x01" * 32)
    headers = {"typ": "at+jwt", "kid": sk.kid}
    payload = claims()
    rows: list[tuple[str, float, float]] = []

    signer = AccessTokenSigner(issuer=ISSUER, audience=AUDIENCE, ttl=TTL)
    verifier = AccessTokenVerifier(KeySet([sk]), issuer=ISSUER, audience=AUDIENCE)
    fixed = {k: payload[k] for k in ("sub", "sid", "client_id", "jti")}
    token = signer.sign(sk, scope=payload["scope"], now=NOW, **fixed)
    signing_input = token.rsplit(".", 1)[0].encode()

    raw_sign, raw_verify = raw_ops(sk, signing_input)
    rows.append(
        (
            "cryptography (floor)",
            best_us(raw_sign, number, repeat),
            best_us(raw_verify, number, repeat),
        )
    )

    # PyJWT: the documented high-level calls, with the prepared key objects.
    pj_token = jwt.encode(payload, sk.private_key, algorithm=alg, headers=headers)
    pj_options: Any = {"require": ["exp", "iat", "iss", "aud", "sub", "jti"]}

    def pyjwt_verify() -> object:
        return jwt.decode(
            pj_token,
            sk.public_key,
            algorithms=[alg],
            audience=AUDIENCE,
            issuer=ISSUER,
            options=pj_options,
            leeway=30,
        )

    pyjwt_verify()
    rows.append(
        (
            f"PyJWT {jwt.__version__} encode/decode",
            best_us(
                lambda: jwt.encode(payload, sk.private_key, algorithm=alg, headers=headers),
                number,
                repeat,
            ),
            best_us(pyjwt_verify, number, repeat),
        )
    )

    # joserfc: keys imported once into its key objects, claims checked by its registry.
    key_cls = {"ES256": jrfc_jwk.ECKey, "EdDSA": jrfc_jwk.OKPKey, "RS256": jrfc_jwk.RSAKey}[alg]
    jr_priv = key_cls.import_key(sk.private_key)  # type: ignore[attr-defined]
    jr_pub = key_cls.import_key(sk.public_key)  # type: ignore[attr-defined]
    jr_header = {"alg": alg, "typ": "at+jwt", "kid": sk.kid}
    jr_token = jrfc_jwt.encode(jr_header, payload, jr_priv, algorithms=[alg])
    registry = JWTClaimsRegistry(
        now=NOW,
        leeway=30,
        iss={"essential": True, "value": ISSUER},
        aud={"essential": True, "value": AUDIENCE},
        sub={"essential": True},
        jti={"essential": True},
        exp={"essential": True},
        iat={"essential": True},
    )

    def joserfc_verify() -> object:
        tok = jrfc_jwt.decode(jr_token, jr_pub, algorithms=[alg])
        registry.validate(tok.claims)
        return tok

    joserfc_verify()
    rows.append(
        (
            f"joserfc {joserfc.__version__} encode/decode",
            best_us(
                lambda: jrfc_jwt.encode(jr_header, payload, jr_priv, algorithms=[alg]),
                number,
                repeat,
            ),
            best_us(joserfc_verify, number, repeat),
        )
    )

    # keyfob's own path: its parser and checks around PyJWT's algorithm objects.
    verifier.verify(token, now=NOW)
    rows.append(
        (
            "keyfob AccessTokenSigner/Verifier",
            best_us(
                lambda: signer.sign(sk, scope=payload["scope"], now=NOW, **fixed), number, repeat
            ),
            best_us(lambda: verifier.verify(token, now=NOW), number, repeat),
        )
    )
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="fewer iterations (smoke run)")
    parser.add_argument("--json", action="store_true", help="print the results as JSON")
    args = parser.parse_args()
    number, repeat = (50, 3) if args.quick else (500, 7)

    results: dict[str, list[tuple[str, float, float]]] = {}
    for alg in ("ES256", "EdDSA", "RS256"):
        results[alg] = measure(alg, number, repeat)

    if args.json:
        print(json.dumps(results, indent=2))
        return
    print(
        f"Python {platform.python_version()}, cryptography {cryptography.__version__} "
        f"({platform.machine()}), {number} calls x {repeat} repeats, best repeat"
    )
    for alg, rows in results.items():
        floor_sign, floor_verify = rows[0][1], rows[0][2]
        print(f"\n{alg}")
        print(f"  {'':38} {'sign µs':>9} {'x floor':>8}   {'verify µs':>9} {'x floor':>8}")
        for name, s, v in rows:
            print(f"  {name:38} {s:9.1f} {s / floor_sign:8.2f}   {v:9.1f} {v / floor_verify:8.2f}")


if __name__ == "__main__":
    main()
