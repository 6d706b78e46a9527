"""JSON responses, plain and for token endpoints (``Cache-Control: no-store``)."""

from __future__ import annotations

import json
from collections.abc import Mapping

from starlette.responses import Response

from ..oauth.errors import NO_STORE_HEADERS

__all__ = ["JSON_MEDIA_TYPE", "json_response", "no_content", "token_response"]

JSON_MEDIA_TYPE = "application/json"
# Built once: json.dumps with any option builds a new encoder on every call.
_ENCODER = json.JSONEncoder(ensure_ascii=False, allow_nan=False, separators=(",", ":"))


def json_response(
    data: object, status: int = 200, headers: Mapping[str, str] | None = None
) -> Response:
    body = _ENCODER.encode(data)
    return Response(body.encode(), status, headers, media_type=JSON_MEDIA_TYPE)


def token_response(data: object, headers: Mapping[str, str] | None = None) -> Response:
    """A successful token response: never cached (RFC 6749 §5.1)."""
    return json_response(data, 200, {**NO_STORE_HEADERS, **(headers or {})})


def no_content(headers: Mapping[str, str] | None = None) -> Response:
    return Response(None, 204, {**NO_STORE_HEADERS, **(headers or {})})
