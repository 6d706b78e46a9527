"""The token pair the client holds, and reading it from a token endpoint's answer.

A :class:`TokenSet` prints masked (``'eyJhb…x9Q'``), so a token that reaches a log line,
a traceback or a debugger's repr is not given away.
"""

from __future__ import annotations

import base64
import binascii
import json
from dataclasses import dataclass
from typing import Any

from .errors import TokenEndpointError

__all__ = ["TokenSet", "mask"]

# Tokens this long or longer show their first 5 and last 3 characters; shorter ones show
# nothing, since a few characters of a short opaque token are a real part of its secret.
_MASK_MIN_LENGTH = 32
# A JWT we peek into for `exp` is at most this long: an access token, not a payload.
_MAX_JWT_PEEK = 16 * 1024


def mask(token: str | None) -> str:
    """A token's printable form: enough to tell two apart, never enough to use one."""
    if token is None:
        return "None"
    if len(token) < _MASK_MIN_LENGTH:
        return "'…'"
    return f"'{token[:5]}…{token[-3:]}'"


@dataclass(frozen=True, repr=False)
class TokenSet:
    """A refresh token, and the access token issued with it if the client has one.

    ``expires_at`` is when the access token expires (seconds since the epoch: from
    ``expires_in``, else from the JWT ``exp``), or ``None`` when the server said
    neither. A set made from a stored refresh token alone has no access token: the first
    request refreshes.
    """

    refresh_token: str
    access_token: str | None = None
    expires_at: float | None = None
    scope: str | None = None

    def __post_init__(self) -> None:
        if not self.refresh_token:
            raise ValueError("a TokenSet needs a refresh token")

    def __repr__(self) -> str:
        return (
            f"TokenSet(refresh_token={mask(self.refresh_token)}, "
            f"access_token={mask(self.access_token)}, expires_at={self.expires_at!r}, "
            f"scope={self.scope!r})"
        )


def token_set_from_answer(
    status_code: int, body: bytes, *, now: float, previous_refresh_token: str | None
) -> TokenSet:
    """The tokens of a successful token answer (RFC 6749 §5.1).

    A refresh answer may omit ``refresh_token`` (§6: the server then keeps the old one
    valid); a login answer must carry one (``previous_refresh_token=None``).
    """
    data = _json_object(status_code, body)
    access_token = data.get("access_token")
    if not isinstance(access_token, str) or not access_token:
        raise TokenEndpointError(status_code, "invalid_response", "no access_token")
    token_type = data.get("token_type")
    if not isinstance(token_type, str) or token_type.lower() != "bearer":
        # RFC 6749 §7.1: a client must not use a token type it does not understand.
        raise TokenEndpointError(status_code, "invalid_response", "token_type is not Bearer")
    refresh_token = data.get("refresh_token", previous_refresh_token)
    if not isinstance(refresh_token, str) or not refresh_token:
        raise TokenEndpointError(status_code, "invalid_response", "no refresh_token")
    scope = data.get("scope")
    return TokenSet(
        refresh_token=refresh_token,
        access_token=access_token,
        expires_at=_expires_at(data.get("expires_in"), access_token, now),
        scope=scope if isinstance(scope, str) else None,
    )


def error_of_answer(status_code: int, body: bytes) -> tuple[str, str]:
    """``(error, error_description)`` of an error answer (RFC 6749 §5.2), or a stand-in
    naming the status when the body is not that JSON."""
    try:
        data = _json_object(status_code, body)
    except TokenEndpointError:
        return f"http_{status_code}", ""
    error = data.get("error")
    description = data.get("error_description")
    return (
        error if isinstance(error, str) and error else f"http_{status_code}",
        description if isinstance(description, str) else "",
    )


def _json_object(status_code: int, body: bytes) -> dict[str, Any]:
    try:
        data = json.loads(body)
    except (ValueError, UnicodeDecodeError):
        raise TokenEndpointError(status_code, "invalid_response", "not JSON") from None
    if not isinstance(data, dict):
        raise TokenEndpointError(status_code, "invalid_response", "not a JSON object")
    return data


def _expires_at(expires_in: object, access_token: str, now: float) -> float | None:
    # expires_in is relative, so it is right even when this machine's clock is off; the
    # JWT's absolute exp is the fallback, and only while this clock says it is ahead
    # (a skewed clock would otherwise refresh on every request; the 401 path covers it).
    # bool is an int in Python; `"expires_in": true` is garbage, not one second.
    if isinstance(expires_in, int | float) and not isinstance(expires_in, bool):
        return now + max(float(expires_in), 0.0)
    exp = jwt_exp(access_token)
    return exp if exp is not None and exp > now else None


def jwt_exp(token: str) -> float | None:
    """The ``exp`` claim of a JWT, read WITHOUT verifying it.

    Only a hint for when to refresh: the resource server verifies the token, the client
    never trusts anything in it. Opaque (non-JWT) access tokens give ``None``.
    """
    if len(token) > _MAX_JWT_PEEK or token.count(".") != 2:
        return None
    payload = token.split(".")[1]
    try:
        raw = base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4))
        claims = json.loads(raw)
    except (ValueError, binascii.Error, UnicodeDecodeError):
        return None
    exp = claims.get("exp") if isinstance(claims, dict) else None
    if isinstance(exp, int | float) and not isinstance(exp, bool):
        return float(exp)
    return None
