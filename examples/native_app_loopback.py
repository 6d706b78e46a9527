"""A native app signs in to keyfob the way RFC 8252 says: the system browser, a loopback
redirect and PKCE S256. No keyfob code: httpx and the standard library only.

Register the app once, as a public client (no secret: an app cannot keep one)::

    keyfob clients add "Example native app" --client-id example-native-app \\
        --auth-method none --redirect-uri http://127.0.0.1/callback

then run it against a running ``keyfob serve``::

    python examples/native_app_loopback.py --issuer http://localhost:8000 \\
        --client-id example-native-app

It reads the server's metadata, listens on 127.0.0.1 on a port the system picks, opens
the browser at the authorization URL (``--no-browser`` only prints it), waits for the
redirect, checks ``state`` and ``iss``, exchanges the code with the PKCE verifier and
prints the token response. ``--refresh`` then refreshes once (the refresh token rotates)
and ``--revoke`` signs out (RFC 7009). ``tests/test_examples.py`` runs it against a real
server.
"""

from __future__ import annotations

import argparse
import base64
import hashlib
import json
import secrets
import time
import webbrowser
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, HTTPServer
from typing import Any
from urllib.parse import parse_qs, urlencode, urlsplit

import httpx

#: How long the app waits for the user to sign in.
SIGN_IN_TIMEOUT = 300.0
#: What the browser shows once the app has the code (it holds no secret).
DONE_PAGE = b"<!doctype html><title>Signed in</title><p>Signed in. Return to the app."


class SignInError(Exception):
    """The sign-in did not complete: refused, cancelled, timed out or forged."""


def discover(issuer: str) -> dict[str, Any]:
    """The server's RFC 8414 metadata; its ``issuer`` must be the one we asked (§3.3)."""
    response = httpx.get(f"{issuer}/.well-known/oauth-authorization-server", timeout=10)
    response.raise_for_status()
    metadata: dict[str, Any] = response.json()
    if metadata.get("issuer") != issuer:
        raise SignInError(f"the metadata is for {metadata.get('issuer')!r}, not {issuer!r}")
    return metadata


# --8<-- [start:pkce]
def pkce_pair() -> tuple[str, str]:
    """A PKCE code verifier and its S256 challenge (RFC 7636 §4.1, §4.2)."""
    verifier = secrets.token_urlsafe(64)  # 86 characters of [A-Za-z0-9_-]
    digest = hashlib.sha256(verifier.encode("ascii")).digest()
    challenge = base64.urlsafe_b64encode(digest).rstrip(b"=").decode("ascii")
    return verifier, challenge


# --8<-- [end:pkce]


def authorization_url(
    metadata: dict[str, Any],
    *,
    client_id: str,
    redirect_uri: str,
    state: str,
    code_challenge: str,
    scope: str = "",
) -> str:
    """Where to send the browser (RFC 6749 §4.1.1, RFC 7636 §4.3)."""
    params = {
        "response_type": "code",
        "client_id": client_id,
        "redirect_uri": redirect_uri,
        "state": state,
        "code_challenge": code_challenge,
        "code_challenge_method": "S256",
    }
    if scope:
        params["scope"] = scope
    return f"{metadata['authorization_endpoint']}?{urlencode(params)}"


# --8<-- [start:callback]
def read_callback(query: str, *, state: str, issuer: str, iss_required: bool) -> str:
    """The code from the redirect's query, after the checks that make it ours.

    ``state`` must be the one this app sent (RFC 6749 §10.12), and ``iss`` the server
    it sent the user to (RFC 9207: a mix-up attack swaps servers).
    """
    params = {k: v[-1] for k, v in parse_qs(query, keep_blank_values=True).items()}
    if not secrets.compare_digest(params.get("state", ""), state):
        raise SignInError("the redirect's state is not the one sent: ignored")
    if ("iss" in params or iss_required) and params.get("iss") != issuer:
        raise SignInError(f"the redirect comes from {params.get('iss')!r}, not {issuer!r}")
    if "error" in params:
        description = params.get("error_description", "")
        raise SignInError(f"the server refused: {params['error']} {description}".strip())
    code = params.get("code")
    if not code:
        raise SignInError("the redirect carries no code")
    return code


# --8<-- [end:callback]


class CallbackServer(HTTPServer):
    """A one-shot HTTP server on 127.0.0.1, on a port the system picks (RFC 8252 §7.3)."""

    def __init__(self, path: str = "/callback") -> None:
        super().__init__(("127.0.0.1", 0), CallbackHandler)
        self.path = path
        self.query: str | None = None

    @property
    def redirect_uri(self) -> str:
        return f"http://127.0.0.1:{self.server_address[1]}{self.path}"

    def wait(self, timeout: float) -> str:
        """The query string of the redirect, once the browser follows it."""
        deadline = time.monotonic() + timeout
        while self.query is None:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise SignInError("no redirect came back in time")
            self.timeout = remaining
            self.handle_request()
        return self.query


class CallbackHandler(BaseHTTPRequestHandler):
    server: CallbackServer

    def do_GET(self) -> None:
        url = urlsplit(self.path)
        if url.path != self.server.path or self.server.query is not None:
            self.send_error(404)  # e.g. the browser asking for /favicon.ico
            return
        self.server.query = url.query
        self.send_response(200)
        self.send_header("Content-Type", "text/html; charset=utf-8")
        self.send_header("Content-Length", str(len(DONE_PAGE)))
        self.end_headers()
        self.wfile.write(DONE_PAGE)

    def log_message(self, format: str, *args: Any) -> None:
        pass  # the query holds the code: keep it out of the terminal


# --8<-- [start:exchange]
def exchange_code(
    metadata: dict[str, Any], *, client_id: str, code: str, redirect_uri: str, verifier: str
) -> dict[str, Any]:
    """The token response for the code (RFC 6749 §4.1.3), proven by the PKCE verifier."""
    return token_request(
        metadata,
        {
            "grant_type": "authorization_code",
            "code": code,
            "redirect_uri": redirect_uri,
            "client_id": client_id,
            "code_verifier": verifier,
        },
    )


# --8<-- [end:exchange]


# --8<-- [start:refresh]
def refresh(metadata: dict[str, Any], *, client_id: str, refresh_token: str) -> dict[str, Any]:
    """New tokens (RFC 6749 §6). The answer's refresh_token replaces the one sent: keep it
    before anything else, because the one sent is now spent."""
    return token_request(
        metadata,
        {"grant_type": "refresh_token", "refresh_token": refresh_token, "client_id": client_id},
    )


def revoke(metadata: dict[str, Any], *, client_id: str, refresh_token: str) -> None:
    """Sign out (RFC 7009): the session of the refresh token ends."""
    response = httpx.post(
        metadata["revocation_endpoint"],
        data={"token": refresh_token, "token_type_hint": "refresh_token", "client_id": client_id},
        timeout=10,
    )
    response.raise_for_status()  # 200 even if the token had already ended (§2.2)


# --8<-- [end:refresh]


def token_request(metadata: dict[str, Any], form: dict[str, str]) -> dict[str, Any]:
    """A POST to the token endpoint; its JSON answer, or SignInError with the RFC 6749 §5.2
    error (``invalid_grant``: the code or refresh token is spent, expired or revoked)."""
    response = httpx.post(metadata["token_endpoint"], data=form, timeout=10)
    try:
        body: dict[str, Any] = response.json()
    except ValueError:
        raise SignInError(f"the token endpoint answered {response.status_code}") from None
    if response.status_code != 200:
        raise SignInError(f"{body.get('error')}: {body.get('error_description', '')}")
    return body


def sign_in(
    issuer: str,
    client_id: str,
    *,
    scope: str = "",
    open_browser: Callable[[str], object] = webbrowser.open,
    timeout: float = SIGN_IN_TIMEOUT,
) -> tuple[dict[str, Any], dict[str, Any]]:
    """The whole flow: the server's metadata and the token response."""
    metadata = discover(issuer)
    verifier, challenge = pkce_pair()
    state = secrets.token_urlsafe(32)
    # Port 0: the system picks a free one; the registration (no port) matches any port.
    with CallbackServer("/callback") as server:
        redirect_uri = server.redirect_uri
        url = authorization_url(
            metadata,
            client_id=client_id,
            redirect_uri=redirect_uri,
            state=state,
            code_challenge=challenge,
            scope=scope,
        )
        print(f"Sign in at: {url}", flush=True)
        open_browser(url)
        query = server.wait(timeout)
    code = read_callback(
        query,
        state=state,
        issuer=issuer,
        iss_required=bool(metadata.get("authorization_response_iss_parameter_supported")),
    )
    tokens = exchange_code(
        metadata, client_id=client_id, code=code, redirect_uri=redirect_uri, verifier=verifier
    )
    return metadata, tokens


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(
        description="Sign in to keyfob as a native app: loopback redirect and PKCE S256."
    )
    parser.add_argument("--issuer", required=True, help="keyfob's issuer URL")
    parser.add_argument("--client-id", required=True)
    parser.add_argument("--scope", default="", help="space-separated scopes to ask for")
    parser.add_argument("--no-browser", action="store_true", help="only print the URL")
    parser.add_argument("--refresh", action="store_true", help="then refresh once")
    parser.add_argument("--revoke", action="store_true", help="then sign out")
    args = parser.parse_args(argv)
    issuer = args.issuer.rstrip("/")
    opener: Callable[[str], object] = (lambda url: None) if args.no_browser else webbrowser.open
    metadata, tokens = sign_in(issuer, args.client_id, scope=args.scope, open_browser=opener)
    print(json.dumps(tokens, indent=2))
    if args.refresh:
        tokens = refresh(metadata, client_id=args.client_id, refresh_token=tokens["refresh_token"])
        print(json.dumps(tokens, indent=2))
    if args.revoke:
        revoke(metadata, client_id=args.client_id, refresh_token=tokens["refresh_token"])
        print("signed out")


if __name__ == "__main__":
    main()
