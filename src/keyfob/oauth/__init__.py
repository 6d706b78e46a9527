"""OAuth 2.0 messages as data: error answers (RFC 6749 §5.2, RFC 6750 §3) and server
metadata (RFC 8414).

No web framework: the server and every integration wrap these in their own responses,
and tests compare against them.
"""

from __future__ import annotations

from .errors import NO_STORE_HEADERS, RenderedError, error_body, render_error
from .metadata import JWKS_PATH, METADATA_PATH, TOKEN_PATH, authorization_server_metadata

__all__ = [
    "JWKS_PATH",
    "METADATA_PATH",
    "NO_STORE_HEADERS",
    "TOKEN_PATH",
    "RenderedError",
    "authorization_server_metadata",
    "error_body",
    "render_error",
]
