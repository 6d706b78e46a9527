"""OAuth 2.0 clients as data, and the pure rules about them (RFC 6749 §2, RFC 8252, RFC 7591).

A :class:`Client` is what the registry keeps: its id, how it authenticates at the token
endpoint, the redirect URIs, grant types and scopes it may use, and whether PKCE is
required of it. :func:`new_client` checks a registration for consistency; the rest of
this module answers questions a server asks on each request, with no I/O:

* :func:`redirect_uri_allowed`: exact string match against the registered URIs, except
  that a loopback redirect (``http://127.0.0.1/…``, ``http://[::1]/…``) matches any port,
  because a native app listens on whatever port the OS gives it (RFC 8252 §7.3).
* :func:`client_secret_matches`: a client secret against its stored hash, in constant time.
* :func:`parse_scope` / :func:`scope_within`: scope strings (RFC 6749 §3.3).

Client secrets are 256 random bits that keyfob generates; the store keeps only their
SHA-256. A slow password hash (argon2) protects *low-entropy* secrets chosen by people
against offline guessing; a generated 256-bit secret cannot be guessed at any hash
speed, so a fast hash loses nothing and keeps client authentication cheap (no CPU
amplification of a flood of bad secrets at the token endpoint).
"""

from __future__ import annotations

import hashlib
import json
import re
import secrets
from collections.abc import Collection, Iterable, Sequence
from dataclasses import dataclass, field
from typing import Final, Literal, get_args
from urllib.parse import urlsplit

from ..exceptions import ConfigurationError, InvalidClientMetadata, InvalidScope
from .jwk import PublicKeySet

__all__ = [
    "AUTH_METHODS",
    "FIRST_PARTY_CLIENT",
    "FIRST_PARTY_CLIENT_ID",
    "GRANT_TYPES",
    "SECRET_AUTH_METHODS",
    "AuthMethod",
    "Client",
    "ClientCredentials",
    "GrantType",
    "client_secret_matches",
    "hash_client_secret",
    "new_client",
    "new_client_id",
    "new_client_secret",
    "parse_scope",
    "redirect_uri_allowed",
    "scope_within",
]

#: How a client authenticates at the token endpoint (RFC 7591 §2, OIDC Core §9).
AuthMethod = Literal["none", "client_secret_basic", "client_secret_post", "private_key_jwt"]
AUTH_METHODS: Final[tuple[AuthMethod, ...]] = get_args(AuthMethod)
SECRET_AUTH_METHODS: Final = frozenset({"client_secret_basic", "client_secret_post"})
#: The grants a client may be registered for.
GrantType = Literal["authorization_code", "refresh_token"]
GRANT_TYPES: Final[tuple[GrantType, ...]] = get_args(GrantType)

#: The built-in client of keyfob's own ``/auth/*`` API and demo page: public, first-party.
FIRST_PARTY_CLIENT_ID: Final = "keyfob"

#: Registered client ids: URL-unreserved characters, so an id is safe in a URL, a form,
#: a Basic credential and a shell command alike.
_CLIENT_ID: Final = re.compile(r"[A-Za-z0-9._~-]{1,128}")
# RFC 6749 §3.3 scope-token: printable ASCII without space, '"' or '\'.
_SCOPE_TOKEN: Final = re.compile(r"[\x21\x23-\x5b\x5d-\x7e]{1,128}")
_SECRET_PREFIX: Final = "kfcs_"
#: The longest client secret worth hashing: ours are 48 characters.
MAX_SECRET_LENGTH: Final = 256
_MAX_REDIRECT_URI: Final = 2048
_MAX_NAME: Final = 200
_LOOPBACK_HOSTS: Final = ("127.0.0.1", "[::1]")
#: After ``http://127.0.0.1:``: an ASCII port, then nothing or a path or a query.
_PORT_THEN_REST: Final = re.compile(r"([0-9]{1,5})((?:[/?].*)?)", re.DOTALL)


@dataclass(frozen=True, slots=True)
class Client:
    """A registered OAuth 2.0 client.

    ``secret_hash`` is SHA-256 of the client secret (``client_secret_*`` methods only);
    ``jwks`` is the client's public JWK Set as JSON text (``private_key_jwt`` only).
    """

    client_id: str
    name: str
    auth_method: AuthMethod
    redirect_uris: tuple[str, ...]
    grant_types: tuple[str, ...]
    scopes: tuple[str, ...]
    created_at: float
    secret_hash: bytes | None = field(default=None, repr=False)
    jwks: str | None = field(default=None, repr=False)
    #: PKCE S256 required in the authorization-code flow (always for public clients).
    require_pkce: bool = True
    #: Trusted by the deployment: consent may be skipped.
    first_party: bool = False
    #: Where RP-initiated logout may send the browser afterwards (OIDC RP-Initiated
    #: Logout §3.1), matched like the redirect URIs.
    post_logout_redirect_uris: tuple[str, ...] = ()

    @property
    def confidential(self) -> bool:
        """Whether the client authenticates (RFC 6749 §2.1): it holds a secret or a key."""
        return self.auth_method != "none"

    @property
    def client_type(self) -> str:
        return "confidential" if self.confidential else "public"

    def allows_grant(self, grant_type: str) -> bool:
        return grant_type in self.grant_types

    def public_key_set(self) -> PublicKeySet:
        """The keys a ``private_key_jwt`` assertion must verify under."""
        if self.jwks is None:
            raise ConfigurationError(f"client {self.client_id} has no JWK Set")
        return PublicKeySet.from_jwks(json.loads(self.jwks))


#: The first-party API's client: public (a browser or app cannot keep a secret),
#: refresh-token grant, no scopes of its own (sessions it starts have none).
FIRST_PARTY_CLIENT: Final = Client(
    client_id=FIRST_PARTY_CLIENT_ID,
    name="keyfob first-party API",
    auth_method="none",
    redirect_uris=(),
    grant_types=("refresh_token",),
    scopes=(),
    created_at=0.0,
    first_party=True,
)


@dataclass(frozen=True, slots=True)
class ClientCredentials:
    """How a request at the token endpoint says which client sent it (RFC 6749 §2.3).

    ``method`` is the one authentication method the request used: ``none`` when it only
    names the client (``client_id``) or not even that (``client_id`` is ``None``: keyfob's
    own first-party client).
    """

    method: AuthMethod
    client_id: str | None
    secret: str | None = field(default=None, repr=False)
    assertion: str | None = field(default=None, repr=False)


def new_client_id() -> str:
    """A fresh random client id (128 bits)."""
    return secrets.token_urlsafe(16)


def new_client_secret() -> str:
    """A fresh client secret: 256 random bits, ``kfcs_``-prefixed so leaks are greppable."""
    return _SECRET_PREFIX + secrets.token_urlsafe(32)


def hash_client_secret(secret: str) -> bytes:
    """What the store keeps of a client secret (see the module docstring for why SHA-256)."""
    return hashlib.sha256(secret.encode("utf-8", "surrogatepass")).digest()


def client_secret_matches(secret: str, secret_hash: bytes | None) -> bool:
    """Whether ``secret`` is the one whose hash is stored, compared in constant time."""
    if secret_hash is None or len(secret) > MAX_SECRET_LENGTH:
        return False
    return secrets.compare_digest(hash_client_secret(secret), secret_hash)


def parse_scope(text: str | None) -> frozenset[str]:
    """The scope tokens of a ``scope`` parameter; :class:`InvalidScope` if malformed.

    RFC 6749 §3.3: space-delimited tokens of printable ASCII without ``"`` or ``\\``.
    """
    if not text:
        return frozenset()
    tokens = text.split(" ")
    if not all(_SCOPE_TOKEN.fullmatch(t) for t in tokens):
        raise InvalidScope("the scope is malformed")
    return frozenset(tokens)


def scope_within(requested: str | None, granted: Collection[str]) -> frozenset[str]:
    """The requested scope if it does not exceed ``granted``, else :class:`InvalidScope`."""
    tokens = parse_scope(requested)
    extra = tokens.difference(granted)
    if extra:
        raise InvalidScope(f"the scope exceeds what was granted: {' '.join(sorted(extra))}")
    return tokens


def redirect_uri_allowed(registered: Iterable[str], presented: str) -> bool:
    """Whether ``presented`` names one of the ``registered`` redirect URIs.

    Simple string comparison (RFC 6749 §3.1.2.3, RFC 9700 §4.1.3): no prefix, no
    normalisation, so ``/cb/../evil``, ``/cb?x``, ``/cb#f`` and ``user@host`` variants
    never match. The one exception is RFC 8252 §7.3: for a registered loopback IP
    redirect, the port of the presented URI may be any.
    """
    candidates = set(registered)
    if presented in candidates:
        return True
    without_port = _loopback_without_port(presented)
    return without_port is not None and without_port in candidates


def _loopback_without_port(uri: str) -> str | None:
    """``http://127.0.0.1:PORT/rest`` → ``http://127.0.0.1/rest``; None if not that shape.

    Done on the text, not through a URL parser, so nothing a parser would normalise
    (case, dot segments, percent-encoding) can make two different strings equal.
    """
    for host in _LOOPBACK_HOSTS:
        prefix = f"http://{host}:"
        if uri.startswith(prefix):
            match = _PORT_THEN_REST.fullmatch(uri, len(prefix))
            if match is None or not 0 < int(match[1]) <= 65535:
                return None
            return f"http://{host}{match[2]}"
    return None


def _check_redirect_uri(uri: str) -> None:
    """A redirect URI fit to register (RFC 6749 §3.1.2, RFC 8252 §7, RFC 9700 §2.1)."""
    if not uri or len(uri) > _MAX_REDIRECT_URI or not uri.isascii() or not uri.isprintable():
        raise InvalidClientMetadata(f"redirect URI {uri[:80]!r} is not printable ASCII")
    if " " in uri or "\\" in uri:
        raise InvalidClientMetadata(f"redirect URI {uri[:80]!r} contains a space or backslash")
    try:
        parts = urlsplit(uri)
        parts.port  # noqa: B018 - raises ValueError for a malformed port
    except ValueError:
        raise InvalidClientMetadata(f"redirect URI {uri[:80]!r} is malformed") from None
    if not parts.scheme:
        raise InvalidClientMetadata(f"redirect URI {uri[:80]!r} must be absolute")
    if "#" in uri:
        raise InvalidClientMetadata(f"redirect URI {uri[:80]!r} must not have a fragment")
    if "@" in parts.netloc:
        raise InvalidClientMetadata(f"redirect URI {uri[:80]!r} must not carry user info")
    scheme = parts.scheme.lower()
    if scheme in ("http", "https"):
        if not parts.hostname:
            raise InvalidClientMetadata(f"redirect URI {uri[:80]!r} has no host")
        loopback = parts.netloc.split(":")[0] in ("127.0.0.1", "localhost") or (
            parts.netloc.startswith("[::1]")
        )
        if scheme == "http" and not loopback:
            raise InvalidClientMetadata(
                f"redirect URI {uri[:80]!r}: plain http only for loopback (RFC 8252 §7.3)"
            )
        if parts.scheme != scheme or parts.netloc != parts.netloc.lower():
            # Compared as strings later: a registration in another case would never match.
            raise InvalidClientMetadata(
                f"redirect URI {uri[:80]!r}: write scheme and host in lower case"
            )
    elif scheme in ("javascript", "data", "file", "vbscript"):
        raise InvalidClientMetadata(f"redirect URI scheme {scheme!r} is not allowed")
    elif "." not in scheme:
        # RFC 8252 §7.1: private-use schemes are reverse domain names (com.example.app).
        raise InvalidClientMetadata(
            f"redirect URI {uri[:80]!r}: a private-use scheme must be a reverse domain name"
        )


def new_client(
    *,
    client_id: str,
    name: str,
    auth_method: AuthMethod,
    redirect_uris: Sequence[str] = (),
    grant_types: Sequence[str] = ("refresh_token",),
    scopes: Iterable[str] = (),
    created_at: float,
    secret: str | None = None,
    jwks: str | None = None,
    require_pkce: bool = True,
    first_party: bool = False,
    post_logout_redirect_uris: Sequence[str] = (),
) -> Client:
    """A consistent client registration, or :class:`InvalidClientMetadata` saying why not.

    ``secret`` (for the ``client_secret_*`` methods) is hashed here and not kept.
    """
    if not _CLIENT_ID.fullmatch(client_id):
        raise InvalidClientMetadata(
            "a client id is 1-128 characters of letters, digits and . _ ~ -"
        )
    if client_id == FIRST_PARTY_CLIENT_ID:
        raise InvalidClientMetadata(f"the client id {FIRST_PARTY_CLIENT_ID!r} is built in")
    if not name or len(name) > _MAX_NAME or not name.isprintable():
        raise InvalidClientMetadata(f"a client name is 1-{_MAX_NAME} printable characters")
    if auth_method not in AUTH_METHODS:
        raise InvalidClientMetadata(f"unknown token endpoint auth method {auth_method!r}")
    unknown = set(grant_types).difference(GRANT_TYPES)
    if unknown or not grant_types:
        raise InvalidClientMetadata(
            f"grant types must be a non-empty subset of {', '.join(GRANT_TYPES)}"
        )
    for uri in (*redirect_uris, *post_logout_redirect_uris):
        _check_redirect_uri(uri)
    if "authorization_code" in grant_types and not redirect_uris:
        raise InvalidClientMetadata("the authorization_code grant needs a redirect URI")
    scope_list = list(scopes)
    try:
        scope_tokens = sorted(parse_scope(" ".join(scope_list)))
    except InvalidScope:
        raise InvalidClientMetadata("scopes are RFC 6749 scope tokens") from None
    if auth_method in SECRET_AUTH_METHODS:
        if secret is None:
            raise InvalidClientMetadata(f"{auth_method} needs a client secret")
    elif secret is not None:
        raise InvalidClientMetadata(f"a {auth_method} client has no client secret")
    if auth_method == "private_key_jwt":
        if jwks is None:
            raise InvalidClientMetadata("private_key_jwt needs the client's JWK Set")
        try:
            keys = PublicKeySet.from_jwks(json.loads(jwks))
        except (ValueError, ConfigurationError) as exc:
            raise InvalidClientMetadata(f"the JWK Set is unusable: {exc}") from None
        if len(keys) == 0:
            raise InvalidClientMetadata("the JWK Set has no keys")
    elif jwks is not None:
        raise InvalidClientMetadata("only a private_key_jwt client has a JWK Set")
    if auth_method == "none" and not require_pkce:
        # RFC 9700 §2.1.1: a public client has nothing but PKCE to bind its code.
        raise InvalidClientMetadata("a public client must use PKCE")
    return Client(
        client_id=client_id,
        name=name,
        auth_method=auth_method,
        redirect_uris=tuple(dict.fromkeys(redirect_uris)),
        grant_types=tuple(g for g in GRANT_TYPES if g in grant_types),
        scopes=tuple(scope_tokens),
        created_at=created_at,
        secret_hash=None if secret is None else hash_client_secret(secret),
        jwks=jwks,
        require_pkce=require_pkce,
        first_party=first_party,
        post_logout_redirect_uris=tuple(dict.fromkeys(post_logout_redirect_uris)),
    )
