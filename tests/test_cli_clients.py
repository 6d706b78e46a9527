"""``keyfob clients``: the client registry from the command line, on a real SQLite store."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

import pytest
from cryptography.hazmat.primitives.asymmetric import ec

from keyfob import InvalidClient, SessionManager, Settings
from keyfob.core.clients import ClientCredentials
from keyfob.core.jwk import public_jwk
from keyfob.store import open_store

from .test_cli import assert_one_line_error, run, store_url

__all__ = ["store_url"]  # the fixture, imported for pytest


def fields(output: str) -> dict[str, list[str]]:
    out: dict[str, list[str]] = {}
    for line in output.splitlines():
        key, sep, value = line.partition(": ")
        if sep:
            out.setdefault(key, []).append(value)
    return out


def authenticates(url: str, client_id: str, secret: str) -> bool:
    """Whether a server on the same store would accept this Basic secret."""

    async def go() -> bool:
        settings = Settings.from_env({"issuer": "http://localhost"})
        async with SessionManager(settings, open_store(url, settings=settings)) as m:
            creds = ClientCredentials("client_secret_basic", client_id, secret=secret)
            try:
                await m.authenticate_client(creds)
            except InvalidClient:
                return False
            return True

    return asyncio.run(go())


def test_add_list_show_rotate_remove(store_url: str) -> None:
    """The whole life of a confidential client; its secret is printed at add and rotate only."""
    result = run(
        "clients",
        "add",
        "Billing service",
        "--client-id",
        "billing",
        "--redirect-uri",
        "https://billing.example/cb",
        "--scope",
        "read write",
    )
    assert result.exit_code == 0, result.output
    printed = fields(result.stdout)
    assert printed["client_id"] == ["billing"]
    secret = printed["client_secret"][0]
    assert secret.startswith("kfcs_") and "shown only now" in result.stderr
    assert authenticates(store_url, "billing", secret)

    listed = run("clients", "list")
    assert listed.exit_code == 0
    assert "billing" in listed.output and "confidential" in listed.output
    assert "authorization_code refresh_token" in listed.output

    shown = run("clients", "show", "billing")
    assert shown.exit_code == 0
    info = fields(shown.output)
    assert info["redirect_uri"] == ["https://billing.example/cb"]
    assert info["scopes"] == ["read write"] and info["require_pkce"] == ["yes"]
    assert secret not in shown.output and "secret_hash" not in shown.output

    rotated = run("clients", "rotate-secret", "billing")
    assert rotated.exit_code == 0
    new_secret = fields(rotated.stdout)["client_secret"][0]
    assert new_secret != secret
    assert authenticates(store_url, "billing", new_secret)
    assert not authenticates(store_url, "billing", secret)

    removed = run("clients", "remove", "billing")
    assert removed.exit_code == 0 and "removed client billing" in removed.output
    assert run("clients", "list").output.strip() == "no clients"


def test_public_and_key_clients(store_url: str, tmp_path: Path) -> None:
    """A public native app gets no secret; a private_key_jwt client registers its JWK Set."""
    result = run(
        "clients",
        "add",
        "Phone app",
        "--auth-method",
        "none",
        "--redirect-uri",
        "http://127.0.0.1/cb",
        "--redirect-uri",
        "com.example.app:/cb",
        "--post-logout-redirect-uri",
        "com.example.app:/signed-out",
        "--post-logout-redirect-uri",
        "http://127.0.0.1/signed-out",
    )
    assert result.exit_code == 0, result.output
    assert "client_secret" not in result.output
    client_id = fields(result.stdout)["client_id"][0]
    shown = fields(run("clients", "show", client_id).output)
    assert shown["type"] == ["public"]
    assert shown["post_logout_redirect_uri"] == [
        "com.example.app:/signed-out",
        "http://127.0.0.1/signed-out",
    ]

    key = ec.generate_private_key(ec.SECP256R1()).public_key()
    jwks = tmp_path / "jwks.json"
    jwks.write_text(json.dumps({"keys": [{**public_jwk(key, "ES256"), "kid": "svc-1"}]}))
    result = run(
        "clients", "add", "Worker", "--auth-method", "private_key_jwt", "--jwks-file", str(jwks)
    )
    assert result.exit_code == 0, result.output
    shown = run("clients", "show", fields(result.stdout)["client_id"][0])
    assert fields(shown.output)["jwk"] == ["svc-1"]


def test_refusals_are_one_line_errors(store_url: str, tmp_path: Path) -> None:
    """Unknown clients, bad registrations and unreadable files: one line, exit 2."""
    for args in (("show", "nobody"), ("remove", "nobody"), ("rotate-secret", "nobody")):
        assert_one_line_error(run("clients", *args), "nobody")
    assert_one_line_error(
        run("clients", "add", "x", "--redirect-uri", "http://evil.example/cb"), "loopback"
    )
    assert_one_line_error(
        run("clients", "add", "x", "--grant-type", "authorization_code"), "redirect URI"
    )
    assert_one_line_error(
        run("clients", "add", "x", "--post-logout-redirect-uri", "https://app.example/#f"),
        "fragment",
    )
    assert_one_line_error(run("clients", "add", "x", "--auth-method", "private_key_jwt"), "JWK")
    bad = tmp_path / "bad.json"
    bad.write_text("{not json")
    assert_one_line_error(
        run("clients", "add", "x", "--auth-method", "private_key_jwt", "--jwks-file", str(bad)),
        "JWK Set",
    )
    assert run("clients", "add", "x", "--client-id", "dup").exit_code == 0
    assert_one_line_error(run("clients", "add", "y", "--client-id", "dup"), "taken")
    assert_one_line_error(run("clients", "remove", "keyfob"), "built in")
    public = run("clients", "add", "p", "--auth-method", "none", "--client-id", "pub")
    assert public.exit_code == 0
    assert_one_line_error(run("clients", "rotate-secret", "pub"), "no secret")


def test_openid_scopes_beside_the_deployments_own(
    store_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """With KEYFOB_SCOPES set, a client may still be registered for openid and profile
    (offered by every deployment), but not for a scope the deployment does not name."""
    monkeypatch.setenv("KEYFOB_SCOPES", "read")
    added = run("clients", "add", "RP", "--auth-method", "none", "--scope", "openid profile read")
    assert added.exit_code == 0, added.output
    client_id = fields(added.stdout)["client_id"][0]
    assert fields(run("clients", "show", client_id).output)["scopes"] == ["openid profile read"]
    assert_one_line_error(run("clients", "add", "x", "--scope", "write"), "write")
