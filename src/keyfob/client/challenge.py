"""Reading a ``WWW-Authenticate`` header: does it say the bearer token is invalid?

Only ``Bearer error="invalid_token"`` (RFC 6750 §3.1) makes the client refresh: a bare
challenge means no credentials were accepted at all, ``insufficient_scope`` cannot be
fixed by a new token of the same session, and another scheme is not ours.
"""

from __future__ import annotations

import re

__all__ = ["is_invalid_token"]

# One auth-param: name = token / quoted-string (RFC 9110 §11.2).
_PARAM = re.compile(r'\s*([A-Za-z0-9!#$%&\'*+.^_`|~-]+)\s*=\s*("(?:[^"\\]|\\.)*"|[^,\s]*)\s*')
# A challenge starts with its scheme: a token followed by a space or the end.
_SCHEME = re.compile(r"\s*([A-Za-z0-9!#$%&'*+.^_`|~-]+)(?=\s|$|,)")


def is_invalid_token(header_values: list[str]) -> bool:
    """True when one of the challenges is ``Bearer`` with ``error="invalid_token"``."""
    return any(_bearer_error(value) == "invalid_token" for value in header_values)


def _bearer_error(value: str) -> str | None:
    """The ``error`` param of the Bearer challenge in one header value, if any."""
    position, scheme = 0, None
    while position < len(value):
        if value[position] in ", \t":
            position += 1
            continue
        param = _PARAM.match(value, position)
        if param is not None and scheme is not None:
            if scheme == "bearer" and param.group(1).lower() == "error":
                return _unquote(param.group(2))
            position = param.end()
            continue
        start = _SCHEME.match(value, position)
        if start is None:
            return None  # unreadable: not a challenge we act on
        scheme = start.group(1).lower()
        position = start.end()
    return None


def _unquote(text: str) -> str:
    if len(text) >= 2 and text[0] == text[-1] == '"':
        return re.sub(r"\\(.)", r"\1", text[1:-1])
    return text
