"""RFC 9068 access tokens: JWTs with ``typ: at+jwt``, signed with the issuer's key set.

keyfob reads and writes the JWS compact serialization of its RFC 9068 profile itself
(:mod:`keyfob.core.jws`) and signs and verifies through PyJWT's JWA algorithm objects, for
the algorithms it allows (RFC 7518 §3.3-3.4, RFC 8037, RFC 9864). Both JOSE libraries were
measured for this hot path (bench/jose_compare.py, docs/dependencies.md): their full
decode() costs about twice the raw signature check, mostly in generic parsing that the
profile does not need.

Verification refuses, in this order and before any work the token did not pay for
(spec §7):

1. anything that is not text of at most ``max_token_bytes`` in three strict base64url
   segments (``MalformedAccessToken``);
2. a header that is not a JSON object, that carries a key or a key URL (``jwk``, ``jku``,
   ``x5c``, ``x5u``) or ``crit``/``b64``, whose ``alg`` is not on the allow-list (so never
   ``none`` or ``HS*``) or whose ``typ`` is not ``at+jwt`` (``MalformedAccessToken``);
3. a ``kid`` that names no key published at ``now`` — keys are only looked up, never
   fetched — or an ``alg`` that is not that key's own (``BadSignature``);
4. a signature that does not verify (``BadSignature``);
5. claims: ``iss``, ``aud`` and the required string claims (``InvalidClaims``), then
   ``exp``, ``nbf`` and ``iat`` with a bounded leeway (``ExpiredAccessToken``).

Nothing else escapes: any input at all ends in a :class:`~keyfob.exceptions.InvalidToken`.
"""

from __future__ import annotations

import re
import secrets
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Final, cast

from ..exceptions import ConfigurationError, ExpiredAccessToken, InvalidClaims
from .jwk import ALGORITHMS, KeyLookup
from .jws import JSON_ENCODER, b64url_encode, json_object, sign_bytes, verify_jws
from .keys import SigningKey

__all__ = [
    "ACCESS_TOKEN_TYP",
    "MAX_LEEWAY",
    "AccessClaims",
    "AccessTokenSigner",
    "AccessTokenVerifier",
]

#: The ``typ`` header of RFC 9068 access tokens.
ACCESS_TOKEN_TYP: Final = "at+jwt"
#: Accepted spellings of ``typ`` (RFC 9068 §4 / RFC 7515 §4.1.9), compared in lower case.
_AT_TYPES: Final = frozenset({"at+jwt", "application/at+jwt"})
#: The largest clock leeway a verifier accepts: more would make ``exp`` meaningless.
MAX_LEEWAY: Final = 300.0
# RFC 6749 §3.3 scope-token: printable ASCII without space, '"' or '\'.
_SCOPE_TOKEN: Final = re.compile(r"[\x21\x23-\x5b\x5d-\x7e]+")


@dataclass(frozen=True, slots=True)
class AccessClaims:
    """The verified claims of an access token."""

    sub: str
    sid: str
    client_id: str
    scope: frozenset[str]
    jti: str
    iss: str
    aud: str
    iat: int
    exp: int
    #: The whole payload, for claims keyfob does not interpret.
    raw: Mapping[str, object]
    #: When the token starts to be valid: the later of ``iat`` and ``nbf`` (before leeway).
    not_before: float


_REQUIRED_STRINGS: Final = ("sub", "sid", "client_id", "jti")


#: The largest NumericDate accepted, in seconds either side of 1970 (285 million years):
#: a date must survive float arithmetic (leeway, cache deadlines), and a 400-digit
#: ``exp`` overflowed it (found by fuzzing: fuzz/regressions/access_token).
_MAX_NUMERIC_DATE: Final = 2**53


def _is_numeric_date(value: object) -> bool:
    # bool is an int subclass and inf a float: neither is a NumericDate (RFC 7519 §2);
    # NaN and the infinities also fail the range test.
    return (type(value) is int or type(value) is float) and (
        -_MAX_NUMERIC_DATE <= value <= _MAX_NUMERIC_DATE
    )


def _bad_claims(claims: Mapping[str, object]) -> InvalidClaims:
    """Name the first required claim that is missing or has the wrong JSON type."""
    for name in _REQUIRED_STRINGS:
        value = claims.get(name)
        if type(value) is not str or not value:
            return InvalidClaims(f"the token has no valid {name!r} claim")
    if "scope" in claims and type(claims.get("scope")) is not str:
        return InvalidClaims("the token has no valid 'scope' claim")
    for name in ("exp", "iat", "nbf"):
        if (name in claims or name != "nbf") and not _is_numeric_date(claims.get(name)):
            return InvalidClaims(f"the token has no valid {name!r} claim")
    return InvalidClaims("the token's claims are invalid")  # pragma: no cover


class AccessTokenSigner:
    """Builds RFC 9068 access tokens for one issuer and audience."""

    __slots__ = ("_audience", "_headers", "_issuer", "_ttl")

    def __init__(self, *, issuer: str, audience: str, ttl: float) -> None:
        if not issuer or not audience:
            raise ConfigurationError("access tokens need an issuer and an audience")
        if not ttl > 0:
            raise ConfigurationError("the access-token lifetime must be positive")
        self._issuer = issuer
        self._audience = audience
        self._ttl = ttl
        # kid -> encoded header segment, built once per key.
        self._headers: dict[str, str] = {}

    def _header(self, key: SigningKey) -> str:
        segment = self._headers.get(key.kid)
        if segment is None:
            header = {"alg": key.alg, "typ": ACCESS_TOKEN_TYP, "kid": key.kid}
            segment = b64url_encode(JSON_ENCODER.encode(header).encode())
            self._headers[key.kid] = segment
        return segment

    def sign(
        self,
        key: SigningKey,
        *,
        sub: str,
        sid: str,
        client_id: str,
        scope: Iterable[str] | str,
        now: float,
        jti: str | None = None,
    ) -> str:
        """A signed access token for ``sub``'s session ``sid``, valid for ``ttl`` from now."""
        if not key.can_sign(now):
            # Publish-before-sign (spec §3 item 6): a key signs only inside its window.
            raise ConfigurationError(f"signing key {key.kid} does not sign at this time")
        scopes = scope.split() if isinstance(scope, str) else sorted(set(scope))
        scope_text = " ".join(scopes)
        if not all(_SCOPE_TOKEN.fullmatch(s) for s in scopes):
            raise ValueError("a scope token is printable ASCII without spaces, quotes or '\\'")
        if not (sub and sid and client_id):
            raise ValueError("sub, sid and client_id cannot be empty")
        iat = int(now)
        claims = {
            "iss": self._issuer,
            "sub": sub,
            "aud": self._audience,
            "exp": int(now + self._ttl),
            "iat": iat,
            "jti": jti or secrets.token_urlsafe(16),
            "client_id": client_id,
            "sid": sid,
        }
        if scope_text:
            # RFC 6749 §3.3: a scope has at least one token; no scope means no claim
            # (RFC 9068 validators refuse "scope": "").
            claims["scope"] = scope_text
        signing_input = f"{self._header(key)}.{b64url_encode(JSON_ENCODER.encode(claims).encode())}"
        signature = sign_bytes(key, signing_input.encode("ascii"))
        return f"{signing_input}.{b64url_encode(signature)}"


class AccessTokenVerifier:
    """Checks access tokens against a key set, an issuer and an audience, with no I/O."""

    __slots__ = ("_algorithms", "_audience", "_issuer", "_keys", "_leeway", "_max_token_bytes")

    def __init__(
        self,
        keys: KeyLookup,
        *,
        issuer: str,
        audience: str,
        algorithms: Sequence[str] = ALGORITHMS,
        leeway: float = 30,
        max_token_bytes: int = 8192,
    ) -> None:
        unknown = set(algorithms) - set(ALGORITHMS)
        if unknown or not algorithms:
            # Refused here, not at the first token: "none" or "HS256" is never an option.
            raise ConfigurationError(f"algorithms must be a non-empty subset of {ALGORITHMS}")
        if not 0 <= leeway <= MAX_LEEWAY:
            raise ConfigurationError(f"the leeway must be between 0 and {MAX_LEEWAY:g} seconds")
        if max_token_bytes < 256:
            raise ConfigurationError("max_token_bytes is too small for any access token")
        if not issuer or not audience:
            raise ConfigurationError("a verifier needs an issuer and an audience")
        self._keys = keys
        self._issuer = issuer
        self._audience = audience
        self._algorithms = frozenset(algorithms)
        self._leeway = float(leeway)
        self._max_token_bytes = max_token_bytes

    def with_keys(self, keys: KeyLookup) -> AccessTokenVerifier:
        """The same policy over a new key set (after a rotation or a JWKS refresh)."""
        return AccessTokenVerifier(
            keys,
            issuer=self._issuer,
            audience=self._audience,
            algorithms=tuple(self._algorithms),
            leeway=self._leeway,
            max_token_bytes=self._max_token_bytes,
        )

    def verify(self, token: str, *, now: float) -> AccessClaims:
        """The claims of a valid token; any other input raises an ``InvalidToken``."""
        jws = verify_jws(
            token,
            keys=self._keys,
            now=now,
            algorithms=self._algorithms,
            max_token_bytes=self._max_token_bytes,
            typ=_AT_TYPES,
        )
        claims = json_object(jws.payload, "payload")
        get = claims.get

        if get("iss") != self._issuer:
            raise InvalidClaims("the token was issued by another issuer")
        aud = get("aud")
        if aud != self._audience and not (type(aud) is list and self._audience in aud):
            raise InvalidClaims("the token is meant for another audience")
        sub, sid, client_id, jti, scope = (
            get("sub"),
            get("sid"),
            get("client_id"),
            get("jti"),
            get("scope"),
        )
        exp, iat, nbf = get("exp"), get("iat"), get("nbf")
        # One combined test on the hot path; _bad_claims says which claim failed.
        if not (
            type(sub) is str
            and sub
            and type(sid) is str
            and sid
            and type(client_id) is str
            and client_id
            and type(jti) is str
            and jti
            and (type(scope) is str or (scope is None and "scope" not in claims))
            and _is_numeric_date(exp)
            and _is_numeric_date(iat)
            and (_is_numeric_date(nbf) or (nbf is None and "nbf" not in claims))
        ):
            raise _bad_claims(claims)
        # Checked just above: numbers (int or finite float), nbf possibly absent.
        exp_at, issued_at = cast(float, exp), cast(float, iat)
        not_before = issued_at if nbf is None else max(issued_at, cast(float, nbf))

        leeway = self._leeway
        if now - leeway >= exp_at:
            raise ExpiredAccessToken("the access token has expired")
        if not_before > now + leeway:
            raise ExpiredAccessToken("the access token is not valid yet")

        return AccessClaims(
            sub,
            sid,
            client_id,
            frozenset(scope.split()) if scope else frozenset(),
            jti,
            self._issuer,
            self._audience,
            int(issued_at),
            int(exp_at),
            claims,
            not_before,
        )

    def __repr__(self) -> str:
        return f"AccessTokenVerifier(issuer={self._issuer!r}, audience={self._audience!r})"
