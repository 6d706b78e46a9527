"""Authorization-server metadata (RFC 8414) as data.

Only what exists is listed: keyfob's token endpoint serves the refresh-token grant to
public clients (no client authentication), and its keys are at ``jwks_uri``.
``response_types_supported`` is required by RFC 8414 §2 and is empty because there is no
authorization endpoint yet.
"""

from __future__ import annotations

__all__ = ["JWKS_PATH", "METADATA_PATH", "TOKEN_PATH", "authorization_server_metadata"]

METADATA_PATH = "/.well-known/oauth-authorization-server"
JWKS_PATH = "/.well-known/jwks.json"
TOKEN_PATH = "/oauth/token"


def authorization_server_metadata(issuer: str) -> dict[str, object]:
    """The RFC 8414 document for ``issuer`` (a URL without a trailing slash)."""
    base = issuer.rstrip("/")
    return {
        "issuer": base,
        "token_endpoint": base + TOKEN_PATH,
        "jwks_uri": base + JWKS_PATH,
        "grant_types_supported": ["refresh_token"],
        "response_types_supported": [],
        "token_endpoint_auth_methods_supported": ["none"],
    }
