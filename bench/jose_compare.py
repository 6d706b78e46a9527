"""Sign and verify one typical RFC 9068 access token with PyJWT, joserfc and keyfob.

Every contender gets key objects prepared once, outside the timed loop, so the numbers
show what each layer adds per call on top of the raw ``cryptography`` operation on the
same bytes (the floor). Contenders:

- ``cryptography (floor)``: sign / verify the token's signing input; for ES256 the floor
  includes the R‖S <-> DER conversion that every JWS implementation has to do.
- ``PyJWT Algorithm layer``: PyJWT's per-algorithm ``sign``/``verify`` on the prepared key,
  no parsing and no claims: the least any use of PyJWT costs.
- ``PyJWT jwt.encode/decode`` and ``joserfc jwt.encode/decode``: the documented calls,
  verifying signature, ``iss``, ``aud``, ``exp``, ``iat`` and required claims.
- ``keyfob``: AccessTokenSigner.sign / AccessTokenVerifier.verify, which also check
  ``typ`` and the header policy.

Run::

    .venv/bin/python bench/jose_compare.py [--quick] [--json]

Timing: CPU time of this thread (``time.thread_time``), so time spent descheduled on a
shared machine does not count; contenders run in interleaved rounds and each keeps its
fastest round, so a noisy neighbour slows every contender alike.
docs/dependencies.md quotes these numbers; rerun after upgrading a library.
"""

from __future__ import annotations

import argparse
import json
import platform
import sys
import time
import timeit
import warnings
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
from jwt.algorithms import get_default_algorithms

try:
    import keyfob  # noqa: F401  (only to know whether it is installed)
except ImportError:  # a plain checkout: measure the source tree
    sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))

from keyfob.core.access_tokens import AccessTokenSigner, AccessTokenVerifier
from keyfob.core.keys import KeySet, SigningKey, generate_key

# joserfc flags "EdDSA" as deprecated by RFC 9864 (in favour of "Ed25519"); keyfob's spec
# names EdDSA, so it is measured as is, without the warning on every call.
warnings.filterwarnings("ignore", message="EdDSA is deprecated")

# PyJWT reads the wall clock itself, so the tokens are issued "now".
NOW = int(time.time())
ISSUER = "https://auth.example.com"
AUDIENCE = "https://api.example.com"
TTL = 900
Op = Callable[[], object]


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


def raw_ops(sk: SigningKey, message: bytes) -> tuple[Op, Op]:
    """The floor: ``cryptography`` signing and verifying the token's signing input."""
    priv, pub = sk.private_key, sk.public_key
    if isinstance(priv, ec.EllipticCurvePrivateKey):
        assert isinstance(pub, ec.EllipticCurvePublicKey)
        ecdsa = ec.ECDSA(hashes.SHA256())
        r, s = decode_dss_signature(priv.sign(message, ecdsa))
        p1363 = r.to_bytes(32, "big") + s.to_bytes(32, "big")

        def ec_sign() -> bytes:
            r, s = decode_dss_signature(priv.sign(message, ecdsa))
            return r.to_bytes(32, "big") + s.to_bytes(32, "big")

        def ec_verify() -> None:
            r = int.from_bytes(p1363[:32], "big")
            s = int.from_bytes(p1363[32:], "big")
            pub.verify(encode_dss_signature(r, s), message, ecdsa)

        return ec_sign, ec_verify
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


def contenders(alg: str) -> list[tuple[str, Op, Op]]:
    """(name, sign, verify) for one algorithm, every key prepared up front."""
    sk = generate_key(alg, now=NOW, activates_at=NOW, kek=b"\x01" * 32)
    payload = claims()
    fixed = {k: payload[k] for k in ("sub", "sid", "client_id", "jti")}

    signer = AccessTokenSigner(issuer=ISSUER, audience=AUDIENCE, ttl=TTL)
    verifier = AccessTokenVerifier(KeySet([sk]), issuer=ISSUER, audience=AUDIENCE)
    token = signer.sign(sk, scope=payload["scope"], now=NOW, **fixed)
    signing_input, _, _ = token.rpartition(".")
    message = signing_input.encode()
    raw_sign, raw_verify = raw_ops(sk, message)

    algorithm = get_default_algorithms()[alg]
    pj_sig = algorithm.sign(message, sk.private_key)

    headers = {"typ": "at+jwt", "kid": sk.kid}
    pj_token = jwt.encode(payload, sk.private_key, algorithm=alg, headers=headers)
    pj_options: Any = {"require": ["exp", "iat", "iss", "aud", "sub", "jti"]}

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

    return [
        ("cryptography (floor)", raw_sign, raw_verify),
        (
            "PyJWT Algorithm layer",
            lambda: algorithm.sign(message, sk.private_key),
            lambda: algorithm.verify(message, sk.public_key, pj_sig),
        ),
        (
            f"PyJWT {jwt.__version__} jwt.encode/decode",
            lambda: jwt.encode(payload, sk.private_key, algorithm=alg, headers=headers),
            lambda: jwt.decode(
                pj_token,
                sk.public_key,
                algorithms=[alg],
                audience=AUDIENCE,
                issuer=ISSUER,
                options=pj_options,
                leeway=30,
            ),
        ),
        (
            f"joserfc {joserfc.__version__} jwt.encode/decode",
            lambda: jrfc_jwt.encode(jr_header, payload, jr_priv, algorithms=[alg]),
            joserfc_verify,
        ),
        (
            "keyfob sign/verify",
            lambda: signer.sign(sk, scope=payload["scope"], now=NOW, **fixed),
            lambda: verifier.verify(token, now=NOW),
        ),
    ]


def interleaved_best_us(ops: dict[str, Op], rounds: int, budget_s: float) -> dict[str, float]:
    """Microseconds per call of each op: the fastest of ``rounds`` interleaved batches."""
    timers = {name: timeit.Timer(op, timer=time.thread_time) for name, op in ops.items()}
    numbers = {}
    for name, op in ops.items():
        op()  # warm up, and check that it works
        once = timeit.timeit(op, number=3) / 3
        numbers[name] = max(1, int(budget_s / max(once, 1e-7)))
    best = dict.fromkeys(ops, float("inf"))
    for _ in range(rounds):
        for name, timer in timers.items():
            n = numbers[name]
            best[name] = min(best[name], timer.timeit(number=n) / n * 1e6)
    return best


def measure(alg: str, rounds: int, budget_s: float) -> list[dict[str, float | str]]:
    rows = contenders(alg)
    ops = {f"{name}|sign": s for name, s, _ in rows} | {f"{name}|verify": v for name, _, v in rows}
    best = interleaved_best_us(ops, rounds, budget_s)
    return [
        {"contender": name, "sign_us": best[f"{name}|sign"], "verify_us": best[f"{name}|verify"]}
        for name, _, _ in rows
    ]


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="fewer rounds (smoke run)")
    parser.add_argument("--json", action="store_true", help="print the results as JSON")
    parser.add_argument("--rounds", type=int, default=25, help="interleaved rounds (25)")
    args = parser.parse_args()
    rounds, budget_s = (3, 0.005) if args.quick else (args.rounds, 0.02)

    results = {alg: measure(alg, rounds, budget_s) for alg in ("ES256", "EdDSA", "RS256")}
    if args.json:
        print(json.dumps(results, indent=2))
        return
    print(
        f"Python {platform.python_version()}, cryptography {cryptography.__version__}, "
        f"{platform.machine()}; best of {rounds} interleaved rounds"
    )
    for alg, rows in results.items():
        floor_sign, floor_verify = float(rows[0]["sign_us"]), float(rows[0]["verify_us"])
        print(f"\n{alg}")
        print(f"  {'':38} {'sign µs':>9} {'x floor':>8}   {'verify µs':>9} {'x floor':>8}")
        for row in rows:
            s, v = float(row["sign_us"]), float(row["verify_us"])
            print(
                f"  {row['contender']!s:38} {s:9.1f} {s / floor_sign:8.2f}"
                f"   {v:9.1f} {v / floor_verify:8.2f}"
            )


if __name__ == "__main__":
    main()
