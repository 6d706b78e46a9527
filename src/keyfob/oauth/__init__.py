"""OAuth 2.0 messages as data: error bodies (RFC 6749 §5.2) and server metadata (RFC 8414).

No I/O and no web framework: the server renders these, and tests compare against them.
"""

from __future__ import annotations

from .errors import NO_STORE_HEADERS, InvalidRequest, UnsupportedGrantType, error_body
from .metadata import JWKS_PATH, METADATA_PATH, TOKEN_PATH, authorization_server_metadata

__all__ = [
    "JWKS_PATH",
    "METADATA_PATH",
    "NO_STORE_HEADERS",
    "TOKEN_PATH",
    "InvalidRequest",
    "UnsupportedGrantType",
    "authorization_server_metadata",
    "error_body",
]
