"""Which client sent a token-endpoint request, and how it means to prove it (RFC 6749
§2.3, RFC 7523 §2.2), read from the ``Authorization`` header and the form: framework-free.

Exactly one method per request (RFC 6749 §2.3): HTTP Basic (``client_secret_basic``),
``client_id`` + ``client_secret`` in the body (``client_secret_post``), a JWT assertion
(``private_key_jwt``), or none (a public client naming itself with ``client_id``, or
naming nobody: keyfob's own first-party client). Whether the credentials are right is
:meth:`keyfob.clients.Clients.authenticate`'s business; this module only reads them.
"""

from __future__ import annotations

import base64
import binascii
import json
import re
from collections.abc import Mapping, Sequence
from typing import Final
from urllib.parse import unquote_plus

from ..core.client_assertion import CLIENT_ASSERTION_TYPE, MAX_ASSERTION_BYTES
from ..core.clients import MAX_SECRET_LENGTH, ClientCredentials
from ..exceptions import InvalidClient, InvalidRequest

__all__ = ["CLIENT_AUTH_PARAMETERS", "read_client_credentials"]

#: The form parameters that carry client credentials.
CLIENT_AUTH_PARAMETERS: Final = frozenset(
    {"client_id", "client_secret", "client_assertion", "client_assertion_type"}
)
# RFC 6749 Appendix A.1: client-id = *VSCHAR.
_CLIENT_ID: Final = re.compile(r"[\x20-\x7e]{1,255}")
_MAX_BASIC: Final = 1024


def read_client_credentials(
    authorization: Sequence[str], form: Mapping[str, str]
) -> ClientCredentials:
    """The client credentials of a request; :class:`InvalidRequest` when malformed or
    when more than one method is used, :class:`InvalidClient` when the Basic header or
    the assertion cannot be read (401 with a Basic challenge)."""
    if len(authorization) > 1:
        raise InvalidRequest("the Authorization header is repeated")
    form_id = form.get("client_id")
    if form_id is not None and not _CLIENT_ID.fullmatch(form_id):
        raise InvalidRequest("client_id is malformed")
    secret = form.get("client_secret")
    assertion = form.get("client_assertion")
    assertion_type = form.get("client_assertion_type")
    if authorization:
        if secret is not None or assertion is not None or assertion_type is not None:
            raise InvalidRequest("use one client authentication method, not several")
        client_id, basic_secret = _basic(authorization[0])
        if form_id is not None and form_id != client_id:
            raise InvalidRequest("client_id differs from the Authorization header's")
        return ClientCredentials("client_secret_basic", client_id, secret=basic_secret)
    if assertion is not None or assertion_type is not None:
        if secret is not None:
            raise InvalidRequest("use one client authentication method, not several")
        if assertion is None or assertion_type is None:
            raise InvalidRequest("client_assertion and client_assertion_type go together")
        if assertion_type != CLIENT_ASSERTION_TYPE:
            raise InvalidRequest(f"client_assertion_type must be {CLIENT_ASSERTION_TYPE}")
        subject = _assertion_subject(assertion)
        if form_id is not None and form_id != subject:
            raise InvalidClient("the client assertion is not the client_id's")
        return ClientCredentials("private_key_jwt", subject, assertion=assertion)
    if secret is not None:
        if form_id is None:
            raise InvalidRequest("client_secret needs client_id")
        return ClientCredentials("client_secret_post", form_id, secret=secret)
    return ClientCredentials("none", form_id)


def _basic(header: str) -> tuple[str, str]:
    """``client_id`` and secret of an HTTP Basic header, each form-urlencoded first
    (RFC 6749 §2.3.1)."""
    scheme, _, encoded = header.strip().partition(" ")
    if scheme.lower() != "basic":
        raise InvalidClient("the token endpoint accepts Basic client authentication only")
    encoded = encoded.strip()
    if len(encoded) > _MAX_BASIC:
        raise InvalidClient("the Basic credentials are too long")
    try:
        decoded = base64.b64decode(encoded, validate=True).decode("utf-8")
    except (binascii.Error, ValueError):
        raise InvalidClient("the Basic credentials are not base64 of UTF-8 text") from None
    raw_id, colon, raw_secret = decoded.partition(":")
    if not colon:
        raise InvalidClient("the Basic credentials have no ':'")
    try:
        client_id = unquote_plus(raw_id, errors="strict")
        secret = unquote_plus(raw_secret, errors="strict")
    except UnicodeDecodeError:
        raise InvalidClient("the Basic credentials are not UTF-8") from None
    if not _CLIENT_ID.fullmatch(client_id):
        raise InvalidClient("the Basic client id is malformed")
    if len(secret) > MAX_SECRET_LENGTH:
        raise InvalidClient("client authentication failed")
    return client_id, secret


def _assertion_subject(assertion: str) -> str:
    """The ``sub`` of an unverified assertion: only to find whose keys verify it."""
    if len(assertion) > MAX_ASSERTION_BYTES:
        raise InvalidClient("the client assertion is too long")
    parts = assertion.split(".")
    if len(parts) != 3:
        raise InvalidClient("the client assertion is not a compact JWS")
    try:
        payload = base64.urlsafe_b64decode(parts[1] + "=" * (-len(parts[1]) % 4))
        claims = json.loads(payload)
    except (binascii.Error, ValueError, RecursionError):
        raise InvalidClient("the client assertion's payload is unreadable") from None
    subject = claims.get("sub") if isinstance(claims, dict) else None
    if not isinstance(subject, str) or not _CLIENT_ID.fullmatch(subject):
        raise InvalidClient("the client assertion names no client")
    return subject
