"""``RefreshTokenCodec.parse``: the ``kfrt_`` text form (core/refresh_tokens.py).

Contract: any text either parses or raises exactly :class:`MalformedToken`; a token that
parses has exactly one text form, the one its accepting key mints again (so no altered,
re-padded or re-cased text is accepted), and comes from a key of the codec's; a token
the codec minted always parses back to its fields; the masked ``repr`` never shows it.

Three kinds of input: free text; a token minted here (under the current key, the
previous key or a foreign one) from fuzzed fields, then altered in one place; and raw
bytes after the prefix with a valid MAC, which reaches the checks behind the MAC.
"""

from __future__ import annotations

import base64
import hmac
import struct

from keyfob.core.refresh_tokens import (
    PREFIX,
    TOKEN_LENGTH,
    ParsedRefreshToken,
    RefreshToken,
    RefreshTokenCodec,
    derive_mac_key,
    encode_sid,
)
from keyfob.exceptions import MalformedToken

from ..data import Reader, Writer

__all__ = ["check", "seeds"]

_CURRENT = derive_mac_key(b"fuzz-current-deployment-secret-0123456789")
_PREVIOUS = derive_mac_key(b"fuzz-previous-deployment-secret-012345678")
_FOREIGN = derive_mac_key(b"fuzz-foreign-deployment-secret-0123456789")
_CODEC = RefreshTokenCodec([_CURRENT, _PREVIOUS])
_SINGLE = {key: RefreshTokenCodec([key]) for key in (_CURRENT, _PREVIOUS, _FOREIGN)}
_MODES = ("text", "minted", "mac_over_raw")
_KEYS = (_CURRENT, _PREVIOUS, _FOREIGN)
_ALTERATIONS = ("none", "replace", "truncate", "append", "swap_case", "pad")
_B64 = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_=+/. \x00é"


def check(data: bytes) -> None:
    r = Reader(data)
    mode = r.pick(_MODES)
    if mode == "text":
        _check_parse(r.rest_text(), minted_under=None)
    elif mode == "minted":
        key = r.pick(_KEYS)
        sid = encode_sid(r.raw(16).ljust(16, b"\0"))
        secret = r.raw(16).ljust(16, b"\0")
        counter = r.integer(0, 2**64 - 1)
        token = _SINGLE[key].mint(sid, secret, counter).value
        altered = _alter(token, r)
        parsed = _check_parse(altered, minted_under=key if altered == token else None)
        if altered == token and key is not _FOREIGN:
            assert parsed is not None, "a token the codec minted must parse"
            assert (parsed.sid, parsed.secret, parsed.counter) == (sid, secret, counter)
        if key is _FOREIGN:
            assert parsed is None, "a token under a foreign key must be refused"
    else:
        # Any bytes behind the prefix, under a valid MAC: the version byte and the
        # canonical-encoding checks are all that stand between them and a session.
        key = r.pick(_KEYS)
        raw = r.raw(120)
        body = raw[:-32] if len(raw) > 32 else raw
        mac = hmac.digest(key, body, "sha256")
        text = PREFIX + base64.urlsafe_b64encode(body + mac).rstrip(b"=").decode("ascii")
        _check_parse(text, minted_under=None)


def _alter(token: str, r: Reader) -> str:
    how = r.pick(_ALTERATIONS)
    where = r.integer(0, len(token) - 1)
    if how == "replace":
        return token[:where] + r.pick(_B64) + token[where + 1 :]
    if how == "truncate":
        return token[:where]
    if how == "append":
        return token + r.text(8)
    if how == "swap_case":
        return token[:where] + token[where].swapcase() + token[where + 1 :]
    if how == "pad":
        return token + "=" * r.integer(1, 3)
    return token


def _check_parse(text: str, *, minted_under: bytes | None) -> ParsedRefreshToken | None:
    shown = repr(RefreshToken(text))
    if len(text) > 8:
        assert text[:-3] not in shown or text[:-3] in PREFIX, "repr must mask the token"
    try:
        parsed = _CODEC.parse(text)
    except MalformedToken:
        assert minted_under in (None, _FOREIGN), "a token the codec minted was refused"
        return None
    # Exactly one text form: the one an accepting key mints from the parsed fields.
    assert len(text) == TOKEN_LENGTH
    reminted = {
        _SINGLE[key].mint(parsed.sid, parsed.secret, parsed.counter).value
        for key in (_CURRENT, _PREVIOUS)
    }
    assert text in reminted, "an accepted token must be exactly what a key of ours mints"
    assert 0 <= parsed.counter < 2**64
    assert len(parsed.secret) == 16 and len(base64.urlsafe_b64decode(parsed.sid + "==")) == 16
    # Parsing is a pure function of the text: a RefreshToken wrapper parses the same.
    assert _CODEC.parse(RefreshToken(text)) == parsed
    return parsed


def seeds() -> list[bytes]:
    counter = struct.pack(">Q", 7)
    return [
        Writer().pick(_MODES, "text").rest_text("kfrt_" + "A" * (TOKEN_LENGTH - 5)).build(),
        Writer()
        .pick(_MODES, "minted")
        .pick(_KEYS, _CURRENT)
        .raw(16, b"s" * 16)
        .raw(16, b"k" * 16)
        .integer(0, 2**64 - 1, 7)
        .pick(_ALTERATIONS, "none")
        .integer(0, TOKEN_LENGTH - 1, 0)
        .build(),
        Writer()
        .pick(_MODES, "minted")
        .pick(_KEYS, _PREVIOUS)
        .raw(16, b"\xff" * 16)
        .raw(16, b"\0" * 16)
        .integer(0, 2**64 - 1, 2**64 - 1)
        .pick(_ALTERATIONS, "replace")
        .integer(0, TOKEN_LENGTH - 1, TOKEN_LENGTH - 1)
        .byte(1)
        .build(),
        Writer()
        .pick(_MODES, "mac_over_raw")
        .pick(_KEYS, _CURRENT)
        .raw(120, b"\x01" + b"s" * 16 + b"k" * 16 + counter + b"m" * 32)
        .build(),
    ]
