"""Interop: Authlib's OAuth 2.0 client against a real ``keyfob`` server process, with no
keyfob code on the client's side. The client is registered the way an operator does it
(``keyfob clients add`` in a subprocess); its session is issued by the application on
the same store (the authorization-code flow that would start it is not built yet).

Authlib refreshes an expired token by itself, revokes (RFC 7009) and introspects
(RFC 7662); its RFC 9068 validator accepts the access tokens and its RFC 8414 validators
the metadata.
"""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import requests
from authlib.integrations.base_client.errors import OAuthError
from authlib.integrations.requests_client import OAuth2Session
from authlib.oauth2.rfc7523 import PrivateKeyJWT
from authlib.oauth2.rfc8414 import AuthorizationServerMetadata
from authlib.oauth2.rfc9068 import JWTBearerTokenValidator
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec
from joserfc.jwk import ECKey, KeySet

from keyfob import Secret, SessionManager, Settings, open_store
from keyfob.core.jwk import public_jwk

from .uvicorn_process import SECRET, UvicornProcess

pytestmark = pytest.mark.slow


@pytest.fixture
def server(tmp_path: Path) -> Iterator[UvicornProcess]:
    with UvicornProcess(tmp_path) as s:
        yield s


def keyfob(server: UvicornProcess, *args: str) -> dict[str, str]:
    """Run ``keyfob`` on the server's store; its ``key: value`` lines."""
    done = subprocess.run(
        [sys.executable, "-m", "keyfob.cli", *args],
        env=server.env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    return dict(line.split(": ", 1) for line in done.stdout.splitlines() if ": " in line)


def issue(server: UvicornProcess, client_id: str, scope: str) -> dict[str, Any]:
    """A session for ``client_id``, started by the application on the server's store; as
    an Authlib token whose access token has already expired."""

    async def go() -> dict[str, Any]:
        settings = Settings(
            store_url=server.env["KEYFOB_STORE_URL"],
            secret=Secret(SECRET),
            issuer=server.url,
            sqlite_synchronous="normal",
        )
        async with SessionManager(settings, open_store(settings.store_url)) as manager:
            pair = await manager.issue("user-7", client_id=client_id, scope=scope)
        return {
            "access_token": pair.access_token,
            "refresh_token": pair.refresh_token.value,
            "token_type": "Bearer",
            "expires_at": int(time.time()) - 10,
        }

    return asyncio.run(go())


class KeyfobTokens(JWTBearerTokenValidator):  # type: ignore[misc]
    """Authlib's RFC 9068 validator, fed keyfob's JWKS."""

    def __init__(self, server: UvicornProcess) -> None:
        super().__init__(issuer=server.url, resource_server=server.url)
        document = requests.get(server.url + "/.well-known/jwks.json", timeout=10).json()
        self.jwks = KeySet.import_key_set(document)

    def get_jwks(self) -> KeySet:
        return self.jwks


def test_authlib_refreshes_revokes_and_introspects(server: UvicornProcess) -> None:
    """A confidential client_secret_basic client: Authlib refreshes the expired token by
    itself, introspects, revokes, and is then refused; the tokens pass RFC 9068 checks."""
    registered = keyfob(server, "clients", "add", "Reports", "--scope", "read", "--scope", "write")
    client_id, secret = registered["client_id"], registered["client_secret"]
    refreshed: list[dict[str, Any]] = []
    session = OAuth2Session(
        client_id,
        secret,
        token_endpoint_auth_method="client_secret_basic",
        token_endpoint=server.url + "/oauth/token",
        token=issue(server, client_id, "read write"),
        update_token=lambda token, refresh_token=None, access_token=None: refreshed.append(token),
    )
    try:
        me = session.get(server.url + "/auth/me", timeout=10)
        assert me.status_code == 200, me.text
        assert me.json()["client_id"] == client_id
        assert len(refreshed) == 1, "Authlib refreshed the expired token on its own"
        token = refreshed[0]
        assert token["scope"] == "read write"

        claims = KeyfobTokens(server).authenticate_token(token["access_token"])
        claims.validate()
        assert claims["client_id"] == client_id and claims["scope"] == "read write"

        narrowed = session.refresh_token(server.url + "/oauth/token", scope="read")
        assert narrowed["scope"] == "read"
        introspected = session.introspect_token(
            server.url + "/oauth/introspect", token=narrowed["refresh_token"]
        )
        info = introspected.json()
        assert info["active"] is True and info["client_id"] == client_id
        assert info["scope"] == "read write", "the session keeps its whole scope"

        revoked = session.revoke_token(
            server.url + "/oauth/revoke",
            token=narrowed["refresh_token"],
            token_type_hint="refresh_token",
        )
        assert revoked.status_code == 200
        gone = session.introspect_token(
            server.url + "/oauth/introspect", token=narrowed["access_token"]
        )
        assert gone.json() == {"active": False}
        assert session.get(server.url + "/auth/me", timeout=10).status_code == 401
        with pytest.raises(OAuthError) as refused:
            session.refresh_token(server.url + "/oauth/token")
        assert refused.value.error == "invalid_grant"
    finally:
        session.close()


def test_authlib_with_a_wrong_secret_and_another_clients_token(server: UvicornProcess) -> None:
    """A wrong secret is invalid_client; a token of another client is invalid_grant."""
    one = keyfob(server, "clients", "add", "One", "--auth-method", "client_secret_post")
    other = keyfob(server, "clients", "add", "Other", "--auth-method", "client_secret_post")
    token = issue(server, one["client_id"], "")
    for client_id, secret, error in [
        (one["client_id"], "kfcs_wrong", "invalid_client"),
        (other["client_id"], other["client_secret"], "invalid_grant"),
    ]:
        with (
            OAuth2Session(
                client_id, secret, token_endpoint_auth_method="client_secret_post", token=token
            ) as session,
            pytest.raises(OAuthError) as refused,
        ):
            session.refresh_token(server.url + "/oauth/token")
        assert refused.value.error == error
    with OAuth2Session(
        one["client_id"],
        one["client_secret"],
        token_endpoint_auth_method="client_secret_post",
        token=token,
    ) as session:
        assert "access_token" in session.refresh_token(server.url + "/oauth/token")


def test_authlib_private_key_jwt(server: UvicornProcess, tmp_path: Path) -> None:
    """RFC 7523: Authlib signs a client assertion with the registered key; it refreshes
    and introspects."""
    key = ec.generate_private_key(ec.SECP256R1())
    jwks = tmp_path / "jwks.json"
    jwks.write_text(json.dumps({"keys": [{**public_jwk(key.public_key(), "ES256"), "kid": "w1"}]}))
    registered = keyfob(
        server, "clients", "add", "Worker", "--auth-method", "private_key_jwt",
        "--jwks-file", str(jwks),
    )  # fmt: skip
    # Authlib reads a PEM as RSA; an EC key is handed over as a joserfc key.
    private = ECKey.import_key(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    token_url = server.url + "/oauth/token"
    session = OAuth2Session(
        registered["client_id"],
        private,
        token_endpoint_auth_method=PrivateKeyJWT(token_url, headers={"kid": "w1"}, alg="ES256"),
        token=issue(server, registered["client_id"], ""),
    )
    try:
        new = session.refresh_token(token_url)
        assert "scope" not in new
        info = session.introspect_token(
            server.url + "/oauth/introspect", token=new["access_token"]
        ).json()
        assert info["active"] is True and info["client_id"] == registered["client_id"]
    finally:
        session.close()


def test_metadata_passes_authlibs_rfc8414_checks(server: UvicornProcess) -> None:
    """Every RFC 8414 check of Authlib passes, response_types_supported included."""
    document = requests.get(
        server.url + "/.well-known/oauth-authorization-server", timeout=10
    ).json()
    metadata = AuthorizationServerMetadata(document)
    metadata.validate()
    assert document["response_types_supported"] == ["code"]
    assert document["code_challenge_methods_supported"] == ["S256"]
    assert document["revocation_endpoint"] == server.url + "/oauth/revoke"
    assert document["introspection_endpoint"] == server.url + "/oauth/introspect"
