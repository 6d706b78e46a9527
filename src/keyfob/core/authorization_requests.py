"""Authorization requests (RFC 6749 §4.1.1, RFC 7636 §4.3, RFC 9700 §2.1, OIDC Core
§3.1.2.1) as pure decisions: what the query says, and whether it may go ahead.

Checking happens in two steps because of what may be trusted when:

1. :func:`parse_parameters` and :func:`requested_client_id`: until the client and its
   redirect URI are known, nothing in the request may steer the browser anywhere, so
   every refusal here is shown to the user (a :class:`Refusal` without ``redirect_uri``);
2. :func:`validate_request`, given the registered client: first the redirect URI (exact
   match, :func:`~keyfob.core.clients.redirect_uri_allowed`), still shown to the user on
   failure, then everything else, whose refusals are sent back to the client at that
   redirect URI (RFC 6749 §4.1.2.1).

Rules worth knowing:

* a parameter given twice is refused (RFC 6749 §3.1), one given empty counts as
  omitted, unknown ones are ignored;
* every value is bounded; an oversize ``state`` is refused and not echoed back;
* ``redirect_uri`` is required (OIDC Core requires it, and it keeps the token request's
  ``redirect_uri`` check meaningful for every client);
* PKCE: a ``code_challenge`` must use ``S256`` (``plain``, or no method, which RFC 7636
  §4.3 reads as ``plain``, is refused: RFC 9700 §2.1.1); without a challenge the request is
  refused unless the client is confidential and registered with ``require_pkce`` off;
* the scope must be within the client's registered scopes and the deployment's offered
  scopes (when it names any);
* ``prompt=none`` is answered ``login_required`` (OIDC Core §3.1.2.6): keyfob keeps no
  single-sign-on session, so every authorization asks for the password;
* ``request``/``request_uri`` (OIDC Core §6) are not supported, and a ``response_mode``
  other than ``query`` is refused: errors and codes travel in the query only.
"""

from __future__ import annotations

import re
from collections.abc import Collection, Mapping
from dataclasses import dataclass
from typing import Final
from urllib.parse import parse_qsl, urlencode, urlsplit

from ..exceptions import InvalidScope
from .clients import Client, parse_scope, redirect_uri_allowed

__all__ = [
    "MAX_PARAMETERS",
    "MAX_QUERY_BYTES",
    "AuthorizationRequest",
    "Parameters",
    "Refusal",
    "parse_parameters",
    "redirect_source",
    "redirect_with",
    "requested_client_id",
    "validate_request",
]

#: The longest query string read at all; a longer one is refused before parsing.
MAX_QUERY_BYTES: Final = 8192
#: The most parameters read from one request.
MAX_PARAMETERS: Final = 32
#: The longest value of each parameter keyfob reads (characters).
MAX_LENGTHS: Final[Mapping[str, int]] = {
    "client_id": 128,
    "redirect_uri": 2048,
    "response_type": 64,
    "scope": 2048,
    "state": 2048,
    "nonce": 512,
    "code_challenge": 128,
    "code_challenge_method": 16,
    "response_mode": 32,
    "prompt": 64,
}
#: RFC 7636 §4.2: BASE64URL(SHA256(verifier)) is exactly 43 characters.
_S256_CHALLENGE: Final = re.compile(r"[A-Za-z0-9_-]{43}")

#: Parameter name -> every value it was given, in order.
Parameters = Mapping[str, tuple[str, ...]]


@dataclass(frozen=True, slots=True)
class Refusal:
    """Why an authorization request cannot go ahead.

    ``error`` is the RFC 6749 §4.1.2.1 (or OIDC Core §3.1.2.6) code. ``redirect_uri``
    is the verified redirect URI the refusal is sent to, with the request's ``state``;
    without one the user is shown an error page instead (RFC 6749 §4.1.2.1: never
    redirect to a URI that is not verified).
    """

    error: str
    description: str
    redirect_uri: str | None = None
    state: str | None = None


@dataclass(frozen=True, slots=True)
class AuthorizationRequest:
    """A checked authorization request: everything the code will be bound to."""

    client_id: str
    redirect_uri: str
    #: Scope tokens in the order first requested, without repeats.
    scopes: tuple[str, ...]
    state: str | None
    code_challenge: str | None
    nonce: str | None

    @property
    def scope(self) -> str:
        """The scope as the space-separated text a code and a token carry."""
        return " ".join(self.scopes)


def parse_parameters(query: bytes) -> Parameters | Refusal:
    """The parameters of a query string, or a refusal shown to the user.

    Strict: UTF-8 only, at most :data:`MAX_PARAMETERS` parameters and
    :data:`MAX_QUERY_BYTES` bytes; empty values are kept here (so a repeat is seen) and
    treated as omitted later.
    """
    if len(query) > MAX_QUERY_BYTES:
        return Refusal("invalid_request", "the request is too long")
    try:
        pairs = parse_qsl(
            query.decode("utf-8"),
            keep_blank_values=True,
            strict_parsing=False,
            encoding="utf-8",
            errors="strict",
            max_num_fields=MAX_PARAMETERS,
        )
    except (UnicodeDecodeError, ValueError):
        return Refusal("invalid_request", "the request is malformed")
    params: dict[str, tuple[str, ...]] = {}
    for name, value in pairs:
        params[name] = (*params.get(name, ()), value)
    return params


def requested_client_id(params: Parameters) -> str | Refusal:
    """The ``client_id`` the request names, or a refusal shown to the user."""
    value = _single(params, "client_id")
    if isinstance(value, Refusal):
        return value
    if value is None:
        return Refusal("invalid_request", "client_id is missing")
    return value


def validate_request(
    params: Parameters, client: Client, *, offered_scopes: Collection[str] = ()
) -> AuthorizationRequest | Refusal:
    """The request checked against its registered ``client`` (see the module docstring).

    ``offered_scopes`` are the deployment's scopes (``KEYFOB_SCOPES``); none: any scope
    the client is registered for.
    """
    redirect_uri = _single(params, "redirect_uri")
    if isinstance(redirect_uri, Refusal):
        return redirect_uri
    if redirect_uri is None:
        return Refusal("invalid_request", "redirect_uri is missing")
    if not redirect_uri_allowed(client.redirect_uris, redirect_uri):
        return Refusal("invalid_request", "the redirect_uri is not registered for this client")
    # From here on the client and its redirect URI are known: refusals go back to it.
    state = _single(params, "state")
    if isinstance(state, Refusal):
        return Refusal(state.error, state.description, redirect_uri)
    checked = _check_parameters(params, client, offered_scopes)
    if isinstance(checked, Refusal):
        return Refusal(checked.error, checked.description, redirect_uri, state)
    scopes, code_challenge, nonce = checked
    return AuthorizationRequest(
        client_id=client.client_id,
        redirect_uri=redirect_uri,
        scopes=scopes,
        state=state,
        code_challenge=code_challenge,
        nonce=nonce,
    )


def _check_parameters(
    params: Parameters, client: Client, offered_scopes: Collection[str]
) -> tuple[tuple[str, ...], str | None, str | None] | Refusal:
    """Scopes, code challenge and nonce of a request to a known redirect URI."""
    values: dict[str, str | None] = {}
    # Every parameter keyfob reads is checked for repeats and size before any is used.
    for name in MAX_LENGTHS:
        value = _single(params, name)
        if isinstance(value, Refusal):
            return value
        values[name] = value
    for name in ("request", "request_uri"):
        if _present(params, name):
            return Refusal(f"{name}_not_supported", f"the {name} parameter is not supported")
    response_type = values["response_type"]
    if response_type is None:
        return Refusal("invalid_request", "response_type is missing")
    if response_type != "code":
        return Refusal("unsupported_response_type", "only response_type=code is supported")
    if not client.allows_grant("authorization_code"):
        return Refusal(
            "unauthorized_client", "this client may not use the authorization code grant"
        )
    if values["response_mode"] not in (None, "query"):
        return Refusal("invalid_request", "only response_mode=query is supported")
    pkce = _check_pkce(values["code_challenge"], values["code_challenge_method"], client)
    if isinstance(pkce, Refusal):
        return pkce
    scopes = _check_scope(values["scope"], client, offered_scopes)
    if isinstance(scopes, Refusal):
        return scopes
    if "none" in (values["prompt"] or "").split(" "):
        return Refusal("login_required", "keyfob asks for the password on every authorization")
    return scopes, pkce, values["nonce"]


def _check_pkce(challenge: str | None, method: str | None, client: Client) -> str | Refusal | None:
    if challenge is None:
        if method is not None:
            return Refusal("invalid_request", "code_challenge_method without code_challenge")
        if client.require_pkce or not client.confidential:
            return Refusal("invalid_request", "PKCE is required: send an S256 code_challenge")
        return None
    if method != "S256":
        # RFC 7636 §4.3: an absent method means "plain", which RFC 9700 §2.1.1 retires.
        return Refusal("invalid_request", "code_challenge_method must be S256")
    if not _S256_CHALLENGE.fullmatch(challenge):
        return Refusal("invalid_request", "an S256 code_challenge is 43 base64url characters")
    return challenge


def _check_scope(
    text: str | None, client: Client, offered_scopes: Collection[str]
) -> tuple[str, ...] | Refusal:
    try:
        parse_scope(text)
    except InvalidScope:
        return Refusal("invalid_scope", "the scope is malformed")
    # parse_scope checked the tokens; keep the requested order for the consent page.
    scopes = tuple(dict.fromkeys((text or "").split(" "))) if text else ()
    allowed = set(client.scopes)
    if offered_scopes:
        allowed.intersection_update(offered_scopes)
    unknown = [s for s in scopes if s not in allowed]
    if unknown:
        return Refusal("invalid_scope", f"scope not allowed for this client: {' '.join(unknown)}")
    return scopes


def _present(params: Parameters, name: str) -> bool:
    return any(params.get(name, ()))


def _single(params: Parameters, name: str) -> str | Refusal | None:
    """The one value of ``name``, ``None`` when absent or empty; repeats and oversize
    values refused."""
    values = params.get(name, ())
    if len(values) > 1:
        return Refusal("invalid_request", f"{name} is repeated")
    if not values or not values[0]:
        return None
    value = values[0]
    limit = MAX_LENGTHS.get(name)
    if limit is not None and len(value) > limit:
        return Refusal("invalid_request", f"{name} is too long (at most {limit} characters)")
    return value


def redirect_with(redirect_uri: str, params: Mapping[str, str | None]) -> str:
    """``redirect_uri`` with ``params`` added to its query (RFC 6749 §4.1.2: the
    registered URI's own query is kept); ``None`` values are left out."""
    extra = urlencode([(k, v) for k, v in params.items() if v is not None])
    if not extra:
        return redirect_uri
    # A registered URI has no fragment (clients.new_client refuses one).
    if "?" not in redirect_uri:
        return f"{redirect_uri}?{extra}"
    separator = "" if redirect_uri.endswith(("?", "&")) else "&"
    return f"{redirect_uri}{separator}{extra}"


# What a CSP source expression may contain of a redirect URI (CSP3 §2.3.1 host-source):
# anything else is left out of the policy rather than escaped.
_SCHEME: Final = re.compile(r"[a-z][a-z0-9+.-]*")
_HOST: Final = re.compile(r"[a-z0-9.-]+|\[[0-9a-f:.]+\]")


def redirect_source(redirect_uri: str) -> str | None:
    """The CSP source expression (``form-action``) that allows a form to lead to
    ``redirect_uri``: its origin for http(s), its scheme for a private-use one
    (``com.example.app:``); ``None`` when it cannot be written safely."""
    try:
        parts = urlsplit(redirect_uri)
        port = parts.port
    except ValueError:
        return None
    scheme = parts.scheme.lower()
    if not _SCHEME.fullmatch(scheme):
        return None
    if scheme not in ("http", "https"):
        return f"{scheme}:"
    host = parts.netloc.rpartition("@")[2].lower()
    if port is not None:
        host = host[: -len(f":{port}")] if host.endswith(f":{port}") else host
    if not _HOST.fullmatch(host):
        return None
    return f"{scheme}://{host}" + (f":{port}" if port is not None else "")
