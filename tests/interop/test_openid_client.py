"""Interop: openid-client (Node, v6 on oauth4webapi), a certified OpenID Connect relying
party, in OIDC mode against a real ``keyfob serve``; the person signs in in Chromium.

``node/flow.mjs`` discovers the provider, builds the authorization URL (PKCE S256, nonce,
state), and after the browser step exchanges the code with the id_token fully validated
(signature against jwks_uri, iss, aud, azp, nonce, exp, iat), fetches the UserInfo,
refreshes, introspects and revokes as a confidential client_secret_basic client, and ends
a second session with RP-initiated logout (the browser visits the end-session URL). The Node
project pins openid-client and its dependencies in package-lock.json (``npm ci`` once).
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest

from ..services import unavailable
from .conftest import Keyfob, Loopback, sign_in, visit

pytestmark = [pytest.mark.browser, pytest.mark.node, pytest.mark.slow]

PROJECT = Path(__file__).resolve().parent / "node"
#: Long enough that the checks after the revocation see revoked, not expired, tokens.
ACCESS_TTL = 60
#: Bounds each Node step against hangs.
NODE_TIMEOUT_SECONDS = 60


@pytest.fixture(scope="module")
def access_ttl() -> int:
    return ACCESS_TTL


def _tool(name: str) -> str:
    found = shutil.which(name)
    if found is None:
        unavailable(f"{name} is not installed (Node.js 20 comes with the machine)")
    return found


@pytest.fixture(scope="module")
def node() -> str:
    """``node``, with node_modules as package-lock.json pins it (`npm ci`, once)."""
    node = _tool("node")
    lock = json.loads((PROJECT / "package-lock.json").read_text())
    pinned = lock["packages"]["node_modules/openid-client"]["version"]
    installed = PROJECT / "node_modules" / "openid-client" / "package.json"
    if not installed.is_file() or json.loads(installed.read_text())["version"] != pinned:
        done = subprocess.run(
            [_tool("npm"), "ci", "--no-audit", "--no-fund", "--prefer-offline", "--loglevel=error"],
            cwd=PROJECT,
            capture_output=True,
            text=True,
            timeout=300,
            check=False,
        )
        assert done.returncode == 0, f"npm ci:\n{done.stdout}\n{done.stderr}"
    return node


def run_flow(
    node: str,
    keyfob: Keyfob,
    browser: Any,
    loopback: Loopback,
    client: tuple[str, str],
    scope: str,
) -> dict[str, Any]:
    """Run node/flow.mjs, doing each browser step it asks for; its report."""
    client_id, secret = client
    env = {
        **os.environ,
        "KEYFOB_ISSUER": keyfob.issuer,
        "CLIENT_ID": client_id,
        "CLIENT_SECRET": secret,
        "REDIRECT_URI": loopback.redirect_uri,
        "POST_LOGOUT_REDIRECT_URI": loopback.post_logout_redirect_uri,
        "SCOPE": scope,
    }
    process = subprocess.Popen(
        [node, "flow.mjs"],
        cwd=PROJECT,
        env=env,
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        assert process.stdout is not None and process.stdin is not None
        while True:
            line = process.stdout.readline()
            if not line:
                _, err = process.communicate(timeout=NODE_TIMEOUT_SECONDS)
                pytest.fail(f"flow.mjs exited {process.returncode}:\n{err}")
            step = json.loads(line)
            if "report" in step:
                break
            if "sign_in" in step:
                landed = sign_in(browser, loopback, step["sign_in"], consent=True)
            else:
                landed = visit(browser, loopback, step["visit"])
            process.stdin.write(landed + "\n")
            process.stdin.flush()
        _, err = process.communicate(timeout=NODE_TIMEOUT_SECONDS)
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
    assert process.returncode == 0, f"flow.mjs exited {process.returncode}:\n{err}"
    report: dict[str, Any] = step["report"]
    return report


def test_openid_client_oidc_code_flow(
    node: str, keyfob: Keyfob, browser: Any, loopback: Loopback
) -> None:
    """Discovery, code + PKCE + nonce with the id_token validated, UserInfo, refresh,
    introspection, revocation, and RP-initiated logout of a second sign-in: every check
    of openid-client passes."""
    client_id, secret = keyfob.add_client(
        "Node portal", "--redirect-uri", loopback.redirect_uri,
        "--post-logout-redirect-uri", loopback.post_logout_redirect_uri,
        "--scope", "openid profile read", "--auth-method", "client_secret_basic",
    )  # fmt: skip
    assert secret is not None
    report = run_flow(node, keyfob, browser, loopback, (client_id, secret), "openid profile")

    assert report["authorization_url"].startswith(keyfob.issuer + "/oauth/authorize?")
    assert report["callback"]["iss"] == keyfob.issuer
    assert report["metadata"]["issuer"] == keyfob.issuer
    assert report["metadata"]["end_session_endpoint"] is not None

    tokens = report["tokens"]
    assert tokens["token_type"].lower() == "bearer" and tokens["has_refresh_token"]
    assert tokens["scope"] == "openid profile" and tokens["expires_in"] == ACCESS_TTL
    assert tokens["id_token_header"]["alg"] == "RS256"  # the client default, OIDC Core §3.1.3.7

    claims = report["id_token"]
    assert claims["iss"] == keyfob.issuer and claims["aud"] in (client_id, [client_id])
    assert claims["sub"] == keyfob.user_id and claims["nonce"] == report["nonce"]
    assert {"auth_time", "at_hash", "sid", "exp", "iat"} <= set(claims)

    assert report["userinfo"]["sub"] == keyfob.user_id
    refreshed = report["refreshed"]
    assert refreshed["rotated"] and refreshed["scope"] == "openid profile"
    assert refreshed["id_token"]["sub"] == claims["sub"]
    assert refreshed["id_token"]["sid"] == claims["sid"]

    introspected = report["introspected"]
    assert introspected["active"] is True
    assert introspected["client_id"] == client_id and introspected["sub"] == keyfob.user_id

    after = report["after_revocation"]
    assert after["introspection"] == {"active": False}
    assert after["refresh"]["error"] == "invalid_grant" and after["refresh"]["status"] == 400
    # RFC 6750 §3.1: the revoked access token is refused at the UserInfo endpoint.
    assert after["userinfo"] == {
        "code": "OAUTH_WWW_AUTHENTICATE_CHALLENGE",
        "status": 401,
        "error": "invalid_token",
        "scheme": "bearer",
    }

    # RP-initiated logout: back at the registered URI with the state; the session ended.
    logout = report["logout"]
    assert logout["landed"] == loopback.post_logout_redirect_uri
    assert logout["state_returned"] is True
    assert logout["introspection"] == {"active": False}
    assert logout["refresh"]["error"] == "invalid_grant"
