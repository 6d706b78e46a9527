"""OpenID Connect id_tokens, userinfo claims and logout hints as pure functions
(OIDC Core 1.0 §2, §3.1.3.6, §5; RP-Initiated Logout 1.0 §2).

An id_token tells the client (the relying party) who signed in, for which session and
when; it is a JWT (``typ: JWT``) signed with the issuer's id-token key (RS256 by default,
``KEYFOB_ID_TOKEN_ALG``), never an access token: it carries ``aud`` = the client and no
``scope``, so a resource server that checks ``typ: at+jwt`` refuses it.

What keyfob knows of a user is small: its id (``sub``) and username. The ``profile``
scope therefore yields ``preferred_username`` and ``updated_at`` (a username never
changes, so the account's creation time); the claims are served by userinfo and are not
repeated in the id_token (OIDC Core §5.4: profile claims go to userinfo when an access
token is issued).
"""

from __future__ import annotations

import hashlib
from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass
from typing import Final

from ..exceptions import InvalidClaims
from .jwk import EDDSA_ALGORITHMS, KeyLookup
from .jws import b64url_encode, json_object, sign_compact, verify_jws
from .keys import SigningKey
from .models import Session, User

__all__ = [
    "CLAIMS_SUPPORTED",
    "ID_TOKEN_TYP",
    "OIDC_SCOPES",
    "OPENID_SCOPE",
    "PROFILE_SCOPE",
    "IdTokenHint",
    "at_hash",
    "has_openid",
    "id_token_claims",
    "sign_id_token",
    "userinfo_claims",
    "verify_id_token_hint",
    "with_oidc_scopes",
]

#: The scope that makes a request an OpenID Connect one (OIDC Core §3.1.2.1).
OPENID_SCOPE: Final = "openid"
#: The scope that asks for the user's profile claims (OIDC Core §5.4).
PROFILE_SCOPE: Final = "profile"
#: The OpenID Connect scopes every deployment offers, beside ``KEYFOB_SCOPES``.
OIDC_SCOPES: Final = (OPENID_SCOPE, PROFILE_SCOPE)
#: The ``typ`` header of id_tokens (OIDC Core §2 recommends "JWT").
ID_TOKEN_TYP: Final = "JWT"
_ID_TOKEN_TYPES: Final = frozenset({"jwt"})
#: Every claim keyfob may put in an id_token or a userinfo answer (Discovery §3).
CLAIMS_SUPPORTED: Final = (
    "iss",
    "sub",
    "aud",
    "azp",
    "exp",
    "iat",
    "auth_time",
    "nonce",
    "at_hash",
    "sid",
    "preferred_username",
    "updated_at",
)
#: A hint longer than this is refused unread (an RS256 id_token is about 900 bytes).
MAX_HINT_BYTES: Final = 8192


def with_oidc_scopes(scopes: Sequence[str]) -> tuple[str, ...]:
    """``openid`` and ``profile``, then the deployment's own scopes (``KEYFOB_SCOPES``)."""
    return tuple(dict.fromkeys((*OIDC_SCOPES, *scopes)))


def has_openid(scope: str) -> bool:
    """Whether a space-separated scope includes ``openid``."""
    return OPENID_SCOPE in scope.split()


def at_hash(access_token: str, alg: str) -> str:
    """OIDC Core §3.1.3.6: base64url of the left half of the access token's hash, with
    the hash of the id_token's ``alg`` (SHA-256 for ES256 and RS256; SHA-512 for Ed25519,
    whose signature hashes with SHA-512: the OpenID Foundation's rule for EdDSA)."""
    digest = (
        hashlib.sha512(access_token.encode("ascii")).digest()
        if alg in EDDSA_ALGORITHMS
        else hashlib.sha256(access_token.encode("ascii")).digest()
    )
    return b64url_encode(digest[: len(digest) // 2])


def id_token_claims(
    session: Session,
    *,
    issuer: str,
    alg: str,
    access_token: str,
    nonce: str | None,
    auth_time: float,
    now: float,
    ttl: float,
) -> dict[str, object]:
    """The claims of the id_token issued with ``access_token`` for ``session``.

    ``aud`` is the client the session was issued to, and ``azp`` too (the party the token
    was issued to, which some clients check whenever present); ``sid`` names the session,
    which RP-initiated logout ends; ``nonce`` is the authorization request's, when it
    had one (a refresh has none); ``exp`` is the access token's lifetime from now.
    """
    claims: dict[str, object] = {
        "iss": issuer,
        "sub": session.user_id,
        "aud": session.client_id,
        "azp": session.client_id,
        "exp": int(now + ttl),
        "iat": int(now),
        "auth_time": int(auth_time),
        "at_hash": at_hash(access_token, alg),
        "sid": session.sid,
    }
    if nonce is not None:
        claims["nonce"] = nonce
    return claims


def sign_id_token(key: SigningKey, claims: Mapping[str, object]) -> str:
    """The id_token: ``claims`` signed with ``key`` (``typ: JWT``, the key's ``kid``)."""
    return sign_compact(key, claims, typ=ID_TOKEN_TYP)


def userinfo_claims(user: User, scopes: Collection[str]) -> dict[str, object]:
    """The userinfo answer (OIDC Core §5.3.2): ``sub``, and the profile claims keyfob
    knows when ``profile`` was granted."""
    claims: dict[str, object] = {"sub": user.id}
    if PROFILE_SCOPE in scopes:
        claims["preferred_username"] = user.username
        # The username is all keyfob holds and it never changes: last updated at creation.
        claims["updated_at"] = int(user.created_at)
    return claims


@dataclass(frozen=True, slots=True)
class IdTokenHint:
    """What a verified ``id_token_hint`` says: whose session, of which client."""

    sub: str
    sid: str
    client_id: str


def verify_id_token_hint(token: str, *, keys: KeyLookup, issuer: str, now: float) -> IdTokenHint:
    """An id_token this issuer signed, expired or not (RP-Initiated Logout §2: a hint is
    often presented after the token has expired). Anything else raises an
    :class:`~keyfob.exceptions.InvalidToken` subclass: a malformed token, an access token
    (``typ``), a key that is not (or no longer) published, another issuer, missing claims.
    """
    jws = verify_jws(token, keys=keys, now=now, max_token_bytes=MAX_HINT_BYTES, typ=_ID_TOKEN_TYPES)
    claims = json_object(jws.payload, "payload")
    if claims.get("iss") != issuer:
        raise InvalidClaims("the id_token was issued by another issuer")
    sub, sid, aud = claims.get("sub"), claims.get("sid"), claims.get("aud")
    if type(aud) is list and len(aud) == 1:
        aud = aud[0]
    if not (type(sub) is str and sub and type(sid) is str and sid and type(aud) is str and aud):
        raise InvalidClaims("the id_token has no valid sub, sid and aud claims")
    return IdTokenHint(sub=sub, sid=sid, client_id=aud)
