"""RFC 7662 introspection answers as data, from what keyfob already verified.

``{"active": false}`` and nothing else for any token that is not active: unknown,
malformed, expired, revoked, rotated away. The answer never says which, so
introspection cannot be used to learn whether a token ever existed (RFC 7662 §2.2, §4).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Final

from .models import Principal, Session

__all__ = ["INACTIVE", "access_token_info", "refresh_token_info"]

#: The whole answer for every token that is not active.
INACTIVE: Final[Mapping[str, object]] = {"active": False}


def _with_scope(info: dict[str, object], scope: str) -> dict[str, object]:
    # RFC 7662 §2.2: scope is a space-separated list; absent when there is none.
    if scope:
        info["scope"] = scope
    return info


def access_token_info(principal: Principal, *, issuer: str, audience: str) -> dict[str, object]:
    """The answer for a valid, unrevoked access token."""
    return _with_scope(
        {
            "active": True,
            "token_type": "Bearer",
            "client_id": principal.client_id,
            "sub": principal.user_id,
            "exp": principal.expires_at,
            "iss": issuer,
            "aud": audience,
            "jti": principal.token_id,
            "sid": principal.sid,
        },
        " ".join(sorted(principal.scopes)),
    )


def refresh_token_info(session: Session, *, issuer: str) -> dict[str, object]:
    """The answer for the current refresh token of a live session."""
    issued_at = session.rotated_at if session.rotated_at is not None else session.created_at
    return _with_scope(
        {
            "active": True,
            "token_type": "refresh_token",
            "client_id": session.client_id,
            "sub": session.user_id,
            "exp": int(session.expires_at()),
            "iat": int(issued_at),
            "iss": issuer,
            "sid": session.sid,
        },
        session.scope,
    )
