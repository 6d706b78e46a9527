"""OAuth 2.0 error responses as data (RFC 6749 §5.2, RFC 6750 §3.1).

An error is rendered as ``{"error": code, "error_description": text}``. The codes of
keyfob's own exceptions live on the classes (``InvalidGrant.error == "invalid_grant"``);
the request-level errors that only an edge can detect are defined here.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Final

from ..exceptions import (  # re-exported: defined with the whole tree
    InvalidRequest,
    UnsupportedGrantType,
)

__all__ = [
    "NO_STORE_HEADERS",
    "InvalidRequest",
    "UnsupportedGrantType",
    "error_body",
]

#: Token responses, successful or not, must not be cached (RFC 6749 §5.1).
NO_STORE_HEADERS: Final[Mapping[str, str]] = {"Cache-Control": "no-store", "Pragma": "no-cache"}

# RFC 6749 §5.2: error_description is %x20-21 / %x23-5B / %x5D-7E.
_NOT_ALLOWED: Final = re.compile(r"[^\x20\x21\x23-\x5b\x5d-\x7e]")


def error_body(error: str, description: str) -> dict[str, str]:
    """The JSON body of an error: ``error`` and an RFC-safe ``error_description``."""
    return {"error": error, "error_description": _NOT_ALLOWED.sub("'", description)}
