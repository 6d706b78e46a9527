"""Lean request-body parsing with size caps: JSON objects and URL-encoded forms.

No validation framework: the hot routes read one or two fields, so each field is
checked where it is read (:func:`text_field`). Anything malformed — the wrong media
type, bytes that are not UTF-8, JSON that is not an object, repeated keys, deep nesting,
lone surrogates — is a 4xx, never a 5xx.
"""

from __future__ import annotations

import json
from typing import Final
from urllib.parse import parse_qsl

from starlette.requests import Request

from ..exceptions import InvalidRequest, PayloadTooLarge, UnsupportedMediaType

__all__ = [
    "MAX_BODY_BYTES",
    "has_body",
    "optional_text_field",
    "read_form",
    "read_json_object",
    "text_field",
]

#: The largest request body any route accepts.
MAX_BODY_BYTES: Final = 16 * 1024
_MAX_FORM_FIELDS: Final = 32
_JSON: Final = "application/json"
_FORM: Final = "application/x-www-form-urlencoded"


def has_body(request: Request) -> bool:
    """Whether the request announces a non-empty body."""
    length = request.headers.get("content-length")
    if length is not None:
        return length.strip() not in {"", "0"}
    return "transfer-encoding" in request.headers


async def read_json_object(request: Request, *, limit: int = MAX_BODY_BYTES) -> dict[str, object]:
    """The body as a JSON object; refuses other media types, sizes and shapes."""
    if not has_body(request):
        raise InvalidRequest("the body must be a JSON object")
    _require_media_type(request, _JSON)
    raw = await _read_body(request, limit)
    try:
        value = _JSON_DECODER.decode(raw.decode("utf-8"))
    except _DuplicateKey as exc:
        raise InvalidRequest(f"the JSON object repeats the member {exc.name[:40]!r}") from None
    except (ValueError, RecursionError):
        # ValueError covers bad JSON, bytes that are not UTF-8 and oversized numbers.
        raise InvalidRequest("the body is not valid JSON") from None
    if not isinstance(value, dict):
        raise InvalidRequest("the body must be a JSON object")
    return value


async def read_form(request: Request, *, limit: int = MAX_BODY_BYTES) -> dict[str, str]:
    """The body as ``application/x-www-form-urlencoded`` parameters.

    A parameter sent twice is refused and one sent without a value counts as omitted
    (RFC 6749 §3.1, §3.2). No body at all is an empty form.
    """
    if not has_body(request):
        return {}
    _require_media_type(request, _FORM)
    raw = await _read_body(request, limit)
    try:
        pairs = parse_qsl(
            raw.decode("utf-8"),
            keep_blank_values=True,
            encoding="utf-8",
            errors="strict",
            max_num_fields=_MAX_FORM_FIELDS,
        )
    except ValueError:
        raise InvalidRequest("the body is not a valid URL-encoded form") from None
    form: dict[str, str] = {}
    seen: set[str] = set()
    for name, value in pairs:
        if name in seen:
            raise InvalidRequest(f"the parameter {name[:40]!r} is repeated")
        seen.add(name)
        if value:
            form[name] = value
    return form


def text_field(data: dict[str, object], name: str, *, max_length: int) -> str:
    """The required string member ``name`` of a JSON object, checked for type and length."""
    value = optional_text_field(data, name, max_length=max_length)
    if value is None:
        raise InvalidRequest(f"{name!r} is required")
    return value


def optional_text_field(data: dict[str, object], name: str, *, max_length: int) -> str | None:
    """The string member ``name`` of a JSON object, or ``None`` when absent."""
    if name not in data:
        return None
    value = data[name]
    if not isinstance(value, str):
        raise InvalidRequest(f"{name!r} must be a string")
    if len(value) > max_length:
        raise InvalidRequest(f"{name!r} is too long (at most {max_length} characters)")
    if not _encodable(value):
        raise InvalidRequest(f"{name!r} is not valid Unicode text")
    return value


def _encodable(value: str) -> bool:
    # JSON "\ud800" decodes to a lone surrogate, which no encoder (argon2, SQLite) accepts.
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


def _require_media_type(request: Request, expected: str) -> None:
    content_type = request.headers.get("content-type", "")
    media_type, _, params = content_type.partition(";")
    if media_type.strip().lower() != expected:
        raise UnsupportedMediaType(f"the body must be {expected}")
    for param in params.split(";"):
        key, _, value = param.partition("=")
        if key.strip().lower() == "charset" and value.strip().strip('"').lower() not in {
            "utf-8",
            "utf8",
        }:
            raise UnsupportedMediaType("the body must be UTF-8")


async def _read_body(request: Request, limit: int) -> bytes:
    length = request.headers.get("content-length")
    if length is not None:
        length = length.strip()
        if not (length.isascii() and length.isdigit()):
            raise InvalidRequest("the Content-Length header is malformed")
        if len(length) > 12 or int(length) > limit:
            raise PayloadTooLarge(f"the body is larger than {limit} bytes")
    # The ASGI messages directly: the hot routes read one small body.
    chunks: list[bytes] = []
    size = 0
    while True:
        message = await request.receive()
        if message["type"] != "http.request":
            raise InvalidRequest("the client went away")
        chunk = message.get("body", b"")
        size += len(chunk)
        if size > limit:
            raise PayloadTooLarge(f"the body is larger than {limit} bytes")
        chunks.append(chunk)
        if not message.get("more_body", False):
            return chunks[0] if len(chunks) == 1 else b"".join(chunks)


class _DuplicateKey(Exception):
    def __init__(self, name: str) -> None:
        super().__init__(name)
        self.name = name


def _no_duplicate_keys(pairs: list[tuple[str, object]]) -> dict[str, object]:
    # Two parsers reading different values from one body is how smuggling starts.
    result = dict(pairs)
    if len(result) != len(pairs):
        seen: set[str] = set()
        for key, _ in pairs:
            if key in seen:
                raise _DuplicateKey(key)
            seen.add(key)
    return result


# Built once (json.loads with a hook builds a new decoder on every call).
_JSON_DECODER = json.JSONDecoder(object_pairs_hook=_no_duplicate_keys)
