"""Where and how the client asks for tokens: an RFC 6749 token endpoint, or keyfob's own
first-party ``/auth`` routes.

An endpoint only builds requests; sending, retrying and reading the answers is the
refresh flow's job (:mod:`.flow`), so a new grant (the authorization-code + PKCE flow for
command-line programs) is one more request builder here and one more flow there.

Security: the refresh token is only ever placed in a request built here, addressed to the
endpoint's URL, and that URL must be ``https`` (RFC 6749 §3.2) unless it is a loopback
address, where TLS buys nothing.
"""

from __future__ import annotations

import base64
import ipaddress
from dataclasses import dataclass, field
from typing import Protocol
from urllib.parse import quote_plus

import httpx

__all__ = ["KeyfobEndpoint", "OAuthTokenEndpoint", "TokenEndpoint"]

_JSON = {"Accept": "application/json"}


class TokenEndpoint(Protocol):
    """Builds the refresh request for one server."""

    @property
    def url(self) -> str:
        """Where refresh requests go (the only place a refresh token is ever sent)."""
        ...

    def refresh_request(self, refresh_token: str) -> httpx.Request:
        """The request that trades ``refresh_token`` for a new token pair."""
        ...


@dataclass(frozen=True)
class OAuthTokenEndpoint:
    """Any RFC 6749 token endpoint: ``grant_type=refresh_token`` as a form POST (§6).

    A public client sends ``client_id`` in the form (§3.2.1); a confidential client gives
    ``client_secret`` and authenticates with HTTP Basic (§2.3.1) instead.
    """

    token_url: str
    client_id: str
    client_secret: str | None = field(default=None, repr=False)

    def __post_init__(self) -> None:
        require_secure_url(self.token_url)
        if not self.client_id:
            raise ValueError("client_id must not be empty")

    @property
    def url(self) -> str:
        return self.token_url

    def refresh_request(self, refresh_token: str) -> httpx.Request:
        return self._request({"grant_type": "refresh_token", "refresh_token": refresh_token})

    def code_request(self, code: str, *, redirect_uri: str, code_verifier: str) -> httpx.Request:
        """Trade an authorization code (RFC 6749 §4.1.3) with its PKCE verifier (RFC 7636
        §4.5) for the first token pair."""
        form = {
            "grant_type": "authorization_code",
            "code": code,
            "redirect_uri": redirect_uri,
            "code_verifier": code_verifier,
        }
        return self._request(form)

    def _request(self, form: dict[str, str]) -> httpx.Request:
        headers = dict(_JSON)
        if self.client_secret is None:
            form["client_id"] = self.client_id
        else:
            headers["Authorization"] = _basic(self.client_id, self.client_secret)
        return httpx.Request("POST", self.token_url, data=form, headers=headers)


@dataclass(frozen=True)
class KeyfobEndpoint:
    """keyfob's first-party routes: ``POST /auth/refresh`` and ``/auth/login`` with the
    refresh token in the JSON body (``transport: "body"``, spec §4), for programs that
    hold their own tokens rather than a browser cookie."""

    base_url: str

    def __post_init__(self) -> None:
        require_secure_url(self.base_url)

    @property
    def url(self) -> str:
        return self._at("/auth/refresh")

    def refresh_request(self, refresh_token: str) -> httpx.Request:
        return httpx.Request("POST", self.url, json={"refresh_token": refresh_token}, headers=_JSON)

    def login_request(self, username: str, password: str) -> httpx.Request:
        body = {"username": username, "password": password, "transport": "body"}
        return httpx.Request("POST", self._at("/auth/login"), json=body, headers=_JSON)

    def _at(self, path: str) -> str:
        return self.base_url.rstrip("/") + path


def require_secure_url(url: str) -> None:
    """Refuse a token URL that would carry credentials in clear over a network."""
    parsed = httpx.URL(url)
    if parsed.scheme == "https" or (parsed.scheme == "http" and _is_loopback(parsed.host)):
        return
    raise ValueError(f"token endpoints must use https (RFC 6749 §3.2), not {url!r}")


def _is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def _basic(client_id: str, client_secret: str) -> str:
    # RFC 6749 §2.3.1: both parts are form-urlencoded before the Basic encoding.
    pair = f"{quote_plus(client_id)}:{quote_plus(client_secret)}"
    return "Basic " + base64.b64encode(pair.encode()).decode("ascii")
