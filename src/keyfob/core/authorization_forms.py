"""The authorization page's form tokens: CSRF tokens and login tickets (pure, no I/O).

Why these, and what each one is bound to:

* **The browser id** is a random value keyfob keeps in an ``HttpOnly; SameSite=Lax``
  cookie scoped to the authorization endpoint. It names the browser, nothing more.
* **The CSRF token** in every form is an HMAC of the browser id (double submit, signed):
  a POST is accepted only when the form's token is the MAC of the cookie it arrived
  with. A cross-site page can neither read the cookie nor, with ``SameSite=Lax``, have
  it sent with its POST; a cookie planted by a sibling domain is useless without the
  matching MAC, which only keyfob can compute.
* **The login ticket** carries the user who typed the right password from the login
  POST to the consent POST, in a hidden field, so keyfob keeps no state between the two.
  It is an HMAC over the user id, the time the password was checked (``auth_time``),
  an expiry (:data:`TICKET_LIFETIME`), the browser id, and every parameter of the
  authorization request. So a ticket works only in the browser it was issued to, only
  for the very request the user saw on the consent page (same client, redirect URI,
  scope, PKCE challenge, nonce and state), and only for a few minutes; a ticket copied
  into another browser, another request, or a later hour is worth nothing. Within its
  lifetime, the same browser may use it again for the same request (a double-click on
  Allow): that only yields another code for what the user has already allowed.

Both MACs are HMAC-SHA256 under keys derived from the deployment secret, one key per
purpose, so neither value can stand in for the other or for any other keyfob MAC.
Secret rotation: mint with the newest secret, accept any.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import json
import re
import secrets
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Final

from .authorization_requests import AuthorizationRequest

__all__ = ["TICKET_LIFETIME", "FormKeys", "LoginTicket", "is_browser_id", "new_browser_id"]

#: Seconds between the password check and the consent decision that may use it.
TICKET_LIFETIME: Final = 600.0

_CSRF_INFO: Final = b"keyfob authorize csrf v1"
_TICKET_INFO: Final = b"keyfob authorize ticket v1"
_BROWSER_ID_BYTES: Final = 16
#: base64url of 16 bytes.
_BROWSER_ID: Final = re.compile(r"[A-Za-z0-9_-]{22}")
#: Longer than any ticket keyfob mints (a 128-character user id at most).
_MAX_TICKET: Final = 1024


@dataclass(frozen=True, slots=True)
class LoginTicket:
    """Who signed in on the login page, and when the password was checked."""

    user_id: str
    auth_time: float


def new_browser_id() -> str:
    """A fresh browser id for the cookie (128 random bits)."""
    return _b64(secrets.token_bytes(_BROWSER_ID_BYTES))


def is_browser_id(value: str) -> bool:
    """Whether a cookie value has the shape of a browser id keyfob made."""
    return _BROWSER_ID.fullmatch(value) is not None


class FormKeys:
    """Mints and checks CSRF tokens and login tickets under keys derived from the
    deployment secrets (newest first)."""

    __slots__ = ("_csrf_keys", "_ticket_keys")

    def __init__(self, deployment_secrets: Sequence[bytes]) -> None:
        if not deployment_secrets:
            raise ValueError("at least one deployment secret is needed")
        self._csrf_keys = [hmac.digest(s, _CSRF_INFO, "sha256") for s in deployment_secrets]
        self._ticket_keys = [hmac.digest(s, _TICKET_INFO, "sha256") for s in deployment_secrets]

    def csrf_token(self, browser_id: str) -> str:
        """The token the forms of the browser with this id carry."""
        return _b64(hmac.digest(self._csrf_keys[0], browser_id.encode(), "sha256"))

    def csrf_valid(self, browser_id: str, token: str) -> bool:
        """Whether ``token`` is this browser's CSRF token (constant-time comparison)."""
        if not token.isascii():
            return False
        expected = (
            _b64(hmac.digest(key, browser_id.encode(), "sha256")) for key in self._csrf_keys
        )
        return any(hmac.compare_digest(token, e) for e in expected)

    def mint_ticket(
        self,
        ticket: LoginTicket,
        *,
        browser_id: str,
        request: AuthorizationRequest,
        now: float,
    ) -> str:
        """The hidden-field value that carries ``ticket`` to the consent POST."""
        payload = _b64(
            json.dumps(
                [ticket.user_id, ticket.auth_time, now + TICKET_LIFETIME],
                separators=(",", ":"),
            ).encode()
        )
        return f"{payload}.{self._mac(self._ticket_keys[0], payload, browser_id, request)}"

    def open_ticket(
        self, value: str, *, browser_id: str, request: AuthorizationRequest, now: float
    ) -> LoginTicket | None:
        """The ticket in ``value`` if keyfob minted it for this browser and this request
        and it has not expired; else ``None``."""
        if len(value) > _MAX_TICKET or not value.isascii():
            return None
        payload, dot, mac = value.partition(".")
        if not dot or not any(
            hmac.compare_digest(mac, self._mac(key, payload, browser_id, request))
            for key in self._ticket_keys
        ):
            return None
        raw = _decode(payload)
        if raw is None:
            return None
        user_id, auth_time, expires_at = json.loads(raw)
        if not now < expires_at:
            return None
        return LoginTicket(user_id=str(user_id), auth_time=float(auth_time))

    @staticmethod
    def _mac(key: bytes, payload: str, browser_id: str, request: AuthorizationRequest) -> str:
        # Each part JSON-encoded in a list: no two different requests share a message.
        bound = json.dumps(
            [
                payload,
                browser_id,
                request.client_id,
                request.redirect_uri,
                request.scope,
                request.state,
                request.code_challenge,
                request.nonce,
            ],
            separators=(",", ":"),
        )
        return _b64(hmac.digest(key, bound.encode(), hashlib.sha256))


def _b64(raw: bytes) -> str:
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode("ascii")


def _decode(text: str) -> bytes | None:
    try:
        return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))
    except (binascii.Error, ValueError):
        return None
