"""Authorization codes (RFC 6749 §4.1) with PKCE (RFC 7636), as data and pure rules.

A code is ``kfac_`` + 256 random bits in base64url (48 characters). The store keeps only
its SHA-256: a database dump yields no usable code, and 256 bits make guessing hopeless,
so a fast hash loses nothing (as for client secrets, :mod:`keyfob.core.clients`).

A code lives :data:`CODE_TTL` (60 s) and is bound to everything the authorization
request settled: the client, the exact redirect URI, the scope, the PKCE challenge, the
OIDC nonce and the time of the login. :func:`new_authorization_code` checks those
against the client's registration when the code is made; :func:`check_exchange` checks
a token request against the code. Every failure of the exchange is ``invalid_grant``
(RFC 6749 §5.2, RFC 7636 §4.6).

PKCE is ``S256`` only: ``plain`` protects nothing against an attacker who can read the
authorization request (RFC 9700 §2.1.1), and every maintained client library does S256.
"""

from __future__ import annotations

import base64
import hashlib
import re
import secrets
from dataclasses import dataclass, field
from typing import Final

from ..exceptions import InvalidGrant, InvalidRequest, UnauthorizedClient
from .clients import Client, redirect_uri_allowed, scope_within
from .models import TokenPair

__all__ = [
    "CODE_LENGTH",
    "CODE_PREFIX",
    "CODE_RETENTION",
    "CODE_TTL",
    "MAX_NONCE",
    "AuthorizationCode",
    "CodeExchange",
    "check_code_challenge",
    "check_exchange",
    "code_hash",
    "new_authorization_code",
    "new_code",
    "s256_challenge",
]

CODE_PREFIX: Final = "kfac_"
_CODE_BYTES: Final = 32
#: Every code has exactly this many characters; anything else is refused unhashed.
CODE_LENGTH: Final = len(CODE_PREFIX) + 43
_CODE_BODY: Final = re.compile(r"[A-Za-z0-9_-]{43}")
#: How long a code may be exchanged, in seconds (RFC 6749 §4.1.2 recommends at most 10
#: minutes; a client exchanges its code at once, so a minute is plenty).
CODE_TTL: Final = 60.0
#: How long a code is kept after it expired. A code presented again within this time is
#: recognised as reused and the session issued from it is revoked (RFC 6749 §4.1.2);
#: after it, the code is forgotten and a replay is merely unknown.
CODE_RETENTION: Final = 86400.0
#: RFC 7636 §4.1: code_verifier = 43*128unreserved.
_VERIFIER: Final = re.compile(r"[A-Za-z0-9._~-]{43,128}")
#: An S256 challenge is the base64url (unpadded) SHA-256 of the verifier: 43 characters.
_S256_CHALLENGE: Final = re.compile(r"[A-Za-z0-9_-]{43}")
#: The longest OIDC nonce kept with a code (OIDC Core sets no limit; a client's nonce is
#: a random value or a hash of one).
MAX_NONCE: Final = 512


@dataclass(frozen=True, slots=True)
class AuthorizationCode:
    """A code as the store keeps it: its hash and what it is bound to.

    ``used_at`` is set by its first presentation at the token endpoint, and ``sid`` to
    the session issued from it, if any (a presentation that failed issued none).
    """

    code_hash: bytes = field(repr=False)
    client_id: str
    user_id: str
    redirect_uri: str
    scope: str
    code_challenge: str | None
    nonce: str | None
    auth_time: float
    created_at: float
    expires_at: float
    used_at: float | None = None
    sid: str | None = None

    def is_expired(self, now: float) -> bool:
        return now >= self.expires_at


@dataclass(frozen=True)
class CodeExchange:
    """What a successful exchange gives: the tokens, and what an ``id_token`` needs."""

    pair: TokenPair
    nonce: str | None
    auth_time: float


def new_code() -> str:
    """A fresh code: 256 random bits, ``kfac_``-prefixed so leaks are greppable."""
    return CODE_PREFIX + secrets.token_urlsafe(_CODE_BYTES)


def code_hash(code: str) -> bytes | None:
    """What the store keeps of ``code``; ``None`` if it is not shaped like a code
    (so a made-up value is refused without a store read)."""
    if len(code) != CODE_LENGTH or not code.startswith(CODE_PREFIX):
        return None
    if not _CODE_BODY.fullmatch(code, len(CODE_PREFIX)):
        return None
    return hashlib.sha256(code.encode("ascii")).digest()


def s256_challenge(verifier: str) -> str:
    """RFC 7636 §4.2: ``BASE64URL(SHA256(ASCII(code_verifier)))`` without padding."""
    digest = hashlib.sha256(verifier.encode("ascii")).digest()
    return base64.urlsafe_b64encode(digest).rstrip(b"=").decode("ascii")


def check_code_challenge(challenge: str, method: str | None) -> None:
    """An authorization request's ``code_challenge`` and ``code_challenge_method``, or
    :class:`InvalidRequest` saying why not: S256 only, and a challenge that some
    verifier can match (43 base64url characters)."""
    if method != "S256":
        # RFC 7636 §4.3 defaults a missing method to "plain", which keyfob refuses.
        raise InvalidRequest("code_challenge_method must be S256 (plain is not supported)")
    if not _S256_CHALLENGE.fullmatch(challenge):
        raise InvalidRequest("code_challenge must be 43 base64url characters (RFC 7636 §4.2)")


def new_authorization_code(
    *,
    code_hash: bytes,
    client: Client,
    user_id: str,
    redirect_uri: str,
    scope: str,
    code_challenge: str | None,
    nonce: str | None,
    auth_time: float,
    now: float,
) -> AuthorizationCode:
    """A code bound to an authorization request, after checking the request against the
    client's registration.

    The authorization page checks all of this before it shows a login form; checking
    again here means no caller can make a code the token endpoint would honour for a
    request the registration does not allow.
    """
    if not client.allows_grant("authorization_code"):
        raise UnauthorizedClient("the client is not registered for the authorization_code grant")
    if not redirect_uri_allowed(client.redirect_uris, redirect_uri):
        raise InvalidRequest("the redirect_uri is not registered for this client")
    tokens = scope_within(scope, client.scopes)
    if code_challenge is None:
        if client.require_pkce:
            raise InvalidRequest("PKCE (code_challenge with S256) is required for this client")
    else:
        check_code_challenge(code_challenge, "S256")
    if nonce is not None and (not nonce or len(nonce) > MAX_NONCE or not nonce.isprintable()):
        raise InvalidRequest(f"the nonce must be 1-{MAX_NONCE} printable characters")
    return AuthorizationCode(
        code_hash=code_hash,
        client_id=client.client_id,
        user_id=user_id,
        redirect_uri=redirect_uri,
        scope=" ".join(sorted(tokens)),
        code_challenge=code_challenge,
        nonce=nonce,
        auth_time=auth_time,
        created_at=now,
        expires_at=now + CODE_TTL,
    )


def check_exchange(
    code: AuthorizationCode,
    *,
    client: Client,
    redirect_uri: str | None,
    code_verifier: str | None,
    now: float,
) -> None:
    """A token request against the code it presents (RFC 6749 §4.1.3, RFC 7636 §4.6);
    :class:`InvalidGrant` saying which binding failed. The caller has checked that the
    code was not used before."""
    if code.client_id != client.client_id:
        raise InvalidGrant("the authorization code was issued to another client")
    if code.is_expired(now):
        raise InvalidGrant("the authorization code has expired")
    # keyfob's authorization endpoint always requires redirect_uri, so the token request
    # must always repeat it, character for character (RFC 6749 §4.1.3).
    if redirect_uri is None:
        raise InvalidGrant("redirect_uri is required: the one of the authorization request")
    if redirect_uri != code.redirect_uri:
        raise InvalidGrant("redirect_uri differs from the one of the authorization request")
    if code.code_challenge is None:
        if client.require_pkce:
            raise InvalidGrant("the authorization request did not use PKCE")
        if code_verifier is not None:
            # RFC 9700 §4.8.2: a verifier for a code made without a challenge is refused,
            # or an attacker could strip the challenge from the request (PKCE downgrade).
            raise InvalidGrant("code_verifier given, but the authorization request had no PKCE")
        return
    if code_verifier is None:
        raise InvalidGrant("code_verifier is required (PKCE)")
    if not _VERIFIER.fullmatch(code_verifier):
        raise InvalidGrant(
            "code_verifier must be 43-128 characters of letters, digits and - . _ ~ (RFC 7636)"
        )
    if not secrets.compare_digest(s256_challenge(code_verifier), code.code_challenge):
        raise InvalidGrant("code_verifier does not match the code_challenge (PKCE)")
