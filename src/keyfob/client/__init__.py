"""keyfob.client: an ``httpx.Auth`` that keeps a session's tokens fresh.

    from keyfob.client import FileTokenStore, KeyfobAuth

    store = FileTokenStore("~/.config/myapp/token.json")
    auth = KeyfobAuth.login("https://auth.example", "alice", password, token_saver=store)
    with httpx.Client(auth=auth) as api:
        api.get("https://api.example/things")

Needs the ``client`` extra (``pip install 'keyfob[client]'``, which brings httpx).
``import keyfob`` never imports this package, and this package imports nothing of the
server, the store or the settings: a program that only talks to keyfob uses it alone.
See docs/client.md.
"""

from __future__ import annotations

try:
    import httpx as _httpx  # noqa: F401 - only to say what to install when it is missing
except ModuleNotFoundError as missing:  # pragma: no cover - depends on the installed extras
    raise ModuleNotFoundError(
        "keyfob.client needs httpx: pip install 'keyfob[client]'", name="httpx"
    ) from missing

from .auth import AuthOptions, KeyfobAuth, TokenSaver
from .endpoints import KeyfobEndpoint, OAuthTokenEndpoint, TokenEndpoint
from .errors import (
    AuthorizationFailed,
    ClientError,
    LoginFailed,
    SessionEnded,
    TokenEndpointError,
    TokenEndpointUnavailable,
    TokenFileError,
    TokenSaveError,
)
from .file_store import FileTokenStore
from .retry import RetryPolicy
from .tokens import TokenSet

__all__ = [
    "AuthOptions",
    "AuthorizationFailed",
    "ClientError",
    "FileTokenStore",
    "KeyfobAuth",
    "KeyfobEndpoint",
    "LoginFailed",
    "OAuthTokenEndpoint",
    "RetryPolicy",
    "SessionEnded",
    "TokenEndpoint",
    "TokenEndpointError",
    "TokenEndpointUnavailable",
    "TokenFileError",
    "TokenSaveError",
    "TokenSaver",
    "TokenSet",
]
