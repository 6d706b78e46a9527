"""Request bodies (server/requests.py): JSON objects, URL-encoded forms, and the string
fields the routes read from them, through a Starlette ``Request`` fed ASGI messages.

Contract: :func:`read_json_object`, :func:`read_form`, :func:`text_field` and
:func:`optional_text_field` raise only :class:`~keyfob.exceptions.InvalidRequest` and
its subclasses (``PayloadTooLarge`` only for a body or ``Content-Length`` over the
limit, ``UnsupportedMediaType`` only for another media type or charset). What they
return is a JSON object without repeated members, a form of non-empty string values
with no repeated names, and text fields that are strings within their length that
encode as UTF-8 (no lone surrogates reach argon2 or the store).
"""

from __future__ import annotations

import json
from collections.abc import Coroutine
from typing import Any, TypeVar

from starlette.requests import Request

from keyfob.exceptions import InvalidRequest, PayloadTooLarge, UnsupportedMediaType
from keyfob.server.requests import (
    MAX_BODY_BYTES,
    optional_text_field,
    read_form,
    read_json_object,
    text_field,
)

from ..data import Reader, Writer

__all__ = ["check", "run_sync", "seeds"]

T = TypeVar("T")

_PARSERS = ("json", "form")
_CONTENT_TYPES = (
    "application/json",
    "application/x-www-form-urlencoded",
    "Application/JSON; charset=UTF-8",
    "application/json; charset=latin-1",
    'application/x-www-form-urlencoded; charset="utf8"',
    "text/plain",
    "absent",
    "fuzzed",
)
_LENGTHS = ("exact", "absent", "chunked", "too_small", "too_large", "fuzzed")
_LIMITS = (32, 1024, MAX_BODY_BYTES)
_FRAGMENTS = (
    "{",
    "}",
    "[",
    "]",
    ",",
    ":",
    '"username"',
    '"password"',
    '"refresh_token"',
    '"transport"',
    '"body"',
    '"\\ud800"',
    '"\\u0000"',
    "1e999",
    "NaN",
    "-0",
    "9" * 5000,
    "null",
    "true",
    "[" * 3000,
    '"' + "x" * 1100 + '"',
    "grant_type=refresh_token",
    "&",
    "=",
    "%ff",
    "%00",
    "+",
)
_FIELDS = (("username", 1024), ("password", 1024), ("refresh_token", MAX_BODY_BYTES))


def run_sync(coroutine: Coroutine[Any, Any, T]) -> T:
    """Run a coroutine that never waits on anything (its ASGI ``receive`` answers at
    once) without an event loop: one ``send`` drives it to the end."""
    try:
        coroutine.send(None)
    except StopIteration as stop:
        return stop.value  # type: ignore[no-any-return]
    coroutine.close()
    raise AssertionError("the parser waited on something other than receive()")


def _body(r: Reader) -> bytes:
    if r.boolean():
        return r.raw(2048)
    return "".join(r.pick(_FRAGMENTS) for _ in range(r.integer(0, 24))).encode(
        "utf-8", "surrogatepass"
    )


def check(data: bytes) -> None:
    r = Reader(data)
    parser = r.pick(_PARSERS)
    content_type = r.pick(_CONTENT_TYPES)
    if content_type == "fuzzed":
        content_type = r.text(80)
    length_kind = r.pick(_LENGTHS)
    limit = r.pick(_LIMITS)
    body = _body(r)
    headers: list[tuple[bytes, bytes]] = []
    if content_type != "absent":
        headers.append((b"content-type", content_type.encode("latin-1", "replace")))
    declared: str | None = {
        "exact": str(len(body)),
        "too_small": str(max(0, len(body) - 1)),
        "too_large": str(len(body) + 1),
        "absent": None,
        "chunked": None,
    }.get(length_kind, "")
    if length_kind == "fuzzed":
        declared = r.text(16)
    if declared is not None:
        headers.append((b"content-length", declared.encode("latin-1", "replace")))
    if length_kind == "chunked":
        headers.append((b"transfer-encoding", b"chunked"))
    messages = _messages(body, r)
    scope = {"type": "http", "method": "POST", "path": "/", "headers": headers}

    async def receive() -> dict[str, object]:
        return messages.pop(0) if messages else {"type": "http.disconnect"}

    request = Request(scope, receive)
    try:
        if parser == "json":
            value: dict[str, Any] = run_sync(read_json_object(request, limit=limit))
        else:
            value = run_sync(read_form(request, limit=limit))
    except PayloadTooLarge:
        assert len(body) > limit or _declared_over(declared, limit), "413 for a small body"
        return
    except UnsupportedMediaType:
        media_type, _, params = content_type.partition(";")
        expected = "application/json" if parser == "json" else "application/x-www-form-urlencoded"
        plain = media_type.strip().lower() == expected and "charset" not in params.lower()
        assert content_type == "absent" or not plain, "415 for the route's own media type"
        return
    except InvalidRequest:
        return
    if parser == "json":
        _check_json(value, content_type)
    else:
        _check_form(value)
    for name, max_length in _FIELDS:
        _check_field(value, name, max_length)


def _messages(body: bytes, r: Reader) -> list[dict[str, object]]:
    cuts = sorted(r.integer(0, len(body)) for _ in range(r.integer(0, 3)))
    pieces = [body[a:b] for a, b in zip([0, *cuts], [*cuts, len(body)], strict=True)]
    messages: list[dict[str, object]] = [
        {"type": "http.request", "body": piece, "more_body": True} for piece in pieces
    ]
    if r.boolean():
        messages.append({"type": "http.disconnect"})  # the client went away mid-body
    else:
        messages[-1]["more_body"] = False
    return messages


def _declared_over(declared: str | None, limit: int) -> bool:
    text = (declared or "").strip()
    return text.isascii() and text.isdigit() and (len(text) > 12 or int(text) > limit)


def _unique_pairs(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    names = [name for name, _ in pairs]
    assert len(names) == len(set(names)), "a JSON object with a repeated member was accepted"
    return dict(pairs)


def _check_json(value: dict[str, Any], content_type: str) -> None:
    assert isinstance(value, dict)
    assert content_type.partition(";")[0].strip().lower() == "application/json"
    # Re-encoding and re-reading finds any repeated member at any depth.
    json.loads(json.dumps(value), object_pairs_hook=_unique_pairs)


def _check_form(value: dict[str, Any]) -> None:
    assert isinstance(value, dict) and len(value) <= 32
    for name, item in value.items():
        assert isinstance(name, str) and isinstance(item, str) and item


def _check_field(value: dict[str, Any], name: str, max_length: int) -> None:
    try:
        field = optional_text_field(value, name, max_length=max_length)
    except InvalidRequest:
        assert name in value
        return
    if field is None:
        assert name not in value
        try:
            text_field(value, name, max_length=max_length)
        except InvalidRequest:
            return
        raise AssertionError("text_field accepted a missing member")
    assert isinstance(field, str) and len(field) <= max_length
    field.encode("utf-8")  # raises on a lone surrogate
    assert text_field(value, name, max_length=max_length) == field


def seeds() -> list[bytes]:
    login = json.dumps({"username": "alice", "password": "pw", "transport": "body"}).encode()
    form = b"grant_type=refresh_token&refresh_token=kfrt_x&client_id=app"
    return [
        Writer()
        .pick(_PARSERS, "json")
        .pick(_CONTENT_TYPES, "application/json")
        .pick(_LENGTHS, "exact")
        .pick(_LIMITS, MAX_BODY_BYTES)
        .boolean(True)
        .raw(2048, login)
        .integer(0, 3, 1)
        .integer(0, len(login), 10)
        .boolean(False)
        .build(),
        Writer()
        .pick(_PARSERS, "form")
        .pick(_CONTENT_TYPES, "application/x-www-form-urlencoded")
        .pick(_LENGTHS, "chunked")
        .pick(_LIMITS, 1024)
        .boolean(True)
        .raw(2048, form)
        .integer(0, 3, 0)
        .boolean(False)
        .build(),
        Writer()
        .pick(_PARSERS, "json")
        .pick(_CONTENT_TYPES, "Application/JSON; charset=UTF-8")
        .pick(_LENGTHS, "absent")
        .pick(_LIMITS, 1024)
        .boolean(False)
        .integer(0, 24, 5)
        .pick(_FRAGMENTS, "{")
        .pick(_FRAGMENTS, '"username"')
        .pick(_FRAGMENTS, ":")
        .pick(_FRAGMENTS, '"\\ud800"')
        .pick(_FRAGMENTS, "}")
        .integer(0, 3, 0)
        .boolean(False)
        .build(),
    ]
