"""The authorization-code flow with PKCE for programs run by a person (RFC 6749 §4.1,
RFC 7636, RFC 8252), without I/O: what to ask the server, what to check in its answers.

* :func:`discover` reads the server's RFC 8414 metadata and refuses a server that cannot
  do this flow safely: an ``issuer`` that is not the one asked for (§3.3: a document
  served for another issuer is a mix-up waiting to happen), no ``S256`` PKCE, or
  endpoints that would carry codes or tokens over plain HTTP off the loopback.
* :class:`AuthorizationRequest` holds the one-time values of one attempt (``state``, the
  PKCE verifier) and builds the URL the person opens.
* :meth:`AuthorizationRequest.code_from_redirect` checks the query the browser brought
  back: ``state`` first (compared in constant time: it is the CSRF defence of the
  redirect, RFC 6749 §10.12), then ``iss`` (RFC 9207, the mix-up defence; required when
  the server says it sends it), then ``error`` or ``code``.

The verifier is 64 random bytes in base64url (86 characters, inside RFC 7636's 43-128);
``state`` is 32 random bytes. Neither is ever put in a log line or a ``repr``.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import secrets
from dataclasses import dataclass, field
from urllib.parse import parse_qs, urlencode, urlsplit

from .endpoints import require_secure_url
from .errors import AuthorizationFailed

__all__ = ["AuthorizationRequest", "ServerMetadata", "discover_request", "server_metadata"]

METADATA_PATH = "/.well-known/oauth-authorization-server"
#: A metadata document is a few kilobytes; more is refused unread.
MAX_METADATA_BYTES = 64 * 1024
#: The longest query string a redirect may bring back.
MAX_REDIRECT_QUERY = 8 * 1024


@dataclass(frozen=True)
class ServerMetadata:
    """What the flow needs of an authorization server's metadata."""

    issuer: str
    authorization_endpoint: str
    token_endpoint: str
    #: The server adds ``iss`` to authorization responses (RFC 9207 §3).
    sends_iss: bool


def discover_request(issuer: str) -> str:
    """The URL of ``issuer``'s RFC 8414 metadata (§3: the well-known path after the host,
    before any path of the issuer)."""
    require_secure_url(issuer)
    parts = urlsplit(issuer.rstrip("/"))
    return f"{parts.scheme}://{parts.netloc}{METADATA_PATH}{parts.path}"


def server_metadata(issuer: str, status_code: int, body: bytes) -> ServerMetadata:
    """Read and check the metadata answer for ``issuer``."""
    if status_code != 200:
        raise AuthorizationFailed("invalid_metadata", f"metadata answered {status_code}")
    if len(body) > MAX_METADATA_BYTES:
        raise AuthorizationFailed("invalid_metadata", "metadata document too large")
    try:
        document = json.loads(body)
    except ValueError:
        raise AuthorizationFailed("invalid_metadata", "metadata is not JSON") from None
    if not isinstance(document, dict):
        raise AuthorizationFailed("invalid_metadata", "metadata is not a JSON object")
    if document.get("issuer") != issuer.rstrip("/"):
        raise AuthorizationFailed(
            "invalid_metadata", "the metadata names another issuer (RFC 8414 §3.3)"
        )
    methods = document.get("code_challenge_methods_supported")
    if not isinstance(methods, list) or "S256" not in methods:
        raise AuthorizationFailed("invalid_metadata", "the server does not offer PKCE S256")
    endpoints = []
    for name in ("authorization_endpoint", "token_endpoint"):
        url = document.get(name)
        if not isinstance(url, str) or not url:
            raise AuthorizationFailed("invalid_metadata", f"the metadata has no {name}")
        try:
            require_secure_url(url)
        except ValueError as exc:
            raise AuthorizationFailed("invalid_metadata", str(exc)) from None
        endpoints.append(url)
    return ServerMetadata(
        issuer=document["issuer"],
        authorization_endpoint=endpoints[0],
        token_endpoint=endpoints[1],
        sends_iss=document.get("authorization_response_iss_parameter_supported") is True,
    )


@dataclass(frozen=True, repr=False)
class AuthorizationRequest:
    """One attempt of the flow: the URL to open and the secrets to check its answer."""

    server: ServerMetadata
    client_id: str
    redirect_uri: str
    scope: str
    state: str = field(default_factory=lambda: secrets.token_urlsafe(32))
    code_verifier: str = field(default_factory=lambda: secrets.token_urlsafe(64))

    def __repr__(self) -> str:
        return (
            f"AuthorizationRequest(issuer={self.server.issuer!r}, "
            f"client_id={self.client_id!r}, redirect_uri={self.redirect_uri!r})"
        )

    @property
    def code_challenge(self) -> str:
        digest = hashlib.sha256(self.code_verifier.encode("ascii")).digest()
        return base64.urlsafe_b64encode(digest).rstrip(b"=").decode("ascii")

    @property
    def url(self) -> str:
        """The authorization URL (RFC 6749 §4.1.1 with RFC 7636 §4.3)."""
        query = {
            "response_type": "code",
            "client_id": self.client_id,
            "redirect_uri": self.redirect_uri,
            "state": self.state,
            "code_challenge": self.code_challenge,
            "code_challenge_method": "S256",
        }
        if self.scope:
            query["scope"] = self.scope
        endpoint = self.server.authorization_endpoint
        separator = "&" if urlsplit(endpoint).query else "?"
        return endpoint + separator + urlencode(query)

    def code_from_redirect(self, query: str) -> str:
        """The code in the redirect's query, once it proves to answer this request."""
        if len(query) > MAX_REDIRECT_QUERY:
            raise AuthorizationFailed("invalid_response", "the redirect's query is too long")
        values = parse_qs(query, keep_blank_values=True)
        if any(len(v) > 1 for v in values.values()):
            raise AuthorizationFailed("invalid_response", "a parameter came back twice")
        got = {name: v[0] for name, v in values.items()}
        state = got.get("state", "")
        if not hmac.compare_digest(state.encode(), self.state.encode()):
            raise AuthorizationFailed(
                "invalid_state", "the redirect does not answer this request (state differs)"
            )
        iss = got.get("iss")
        if (iss is not None or self.server.sends_iss) and iss != self.server.issuer:
            raise AuthorizationFailed(
                "invalid_issuer", "the redirect comes from another issuer (RFC 9207)"
            )
        if "error" in got:
            raise AuthorizationFailed(got["error"], got.get("error_description", ""))
        code = got.get("code")
        if not code:
            raise AuthorizationFailed("invalid_response", "the redirect carries no code")
        return code
