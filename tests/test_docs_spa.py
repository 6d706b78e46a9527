"""The SPA code of docs/howto/oauth-spa.md runs as written, against a real keyfob server.

Its JavaScript blocks are taken from the page, joined into one ES module and run in Node
(``tests/docs_spa/driver.mjs``) with oauth4webapi, the library the page uses, pinned in
``tests/docs_spa/package-lock.json``. The one change is the issuer URL. oauth4webapi
talks HTTPS only, so the server here has a throwaway certificate that Node is told to
trust (``NODE_EXTRA_CA_CERTS``); keyfob is configured as the page says
(``KEYFOB_CORS_ORIGINS``, the ``keyfob clients add`` command word for word). The
sign-in page is filled with plain form posts (``tests/oauth_pages.py``).
"""

from __future__ import annotations

import datetime
import ipaddress
import json
import os
import re
import shutil
import signal
import ssl
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from .conftest import PASSWORD
from .oauth_pages import sign_in
from .server.uvicorn_process import SECRET
from .services import free_port, require_binary
from .test_example_native_app import documented_commands

pytestmark = pytest.mark.slow

ROOT = Path(__file__).resolve().parent.parent
PAGE = ROOT / "docs" / "howto" / "oauth-spa.md"
PROJECT = Path(__file__).resolve().parent / "docs_spa"
#: The page's issuer line; the test's server has another URL.
ISSUER_LINE = 'const issuer = new URL("https://auth.example.com");'
#: The commands the page gives, word for word.
REGISTER = [
    "clients", "add", "Example SPA", "--client-id", "example-spa",
    "--auth-method", "none", "--redirect-uri", "https://app.example.org/callback",
]  # fmt: skip
CORS_ORIGINS = "https://app.example.org"
#: Shorter than the SPA's 30 s margin: every API call of the page's code refreshes first.
ACCESS_TTL = "20"
NODE_TIMEOUT = 60


def test_the_page_configures_keyfob_as_this_test_does() -> None:
    """The page's ``keyfob clients add`` and ``KEYFOB_CORS_ORIGINS`` are the ones run here."""
    register, serve = documented_commands(PAGE, "keyfob") + documented_commands(
        PAGE, f"KEYFOB_CORS_ORIGINS={CORS_ORIGINS}"
    )
    assert register == ["keyfob", *REGISTER]
    assert serve[:3] == [f"KEYFOB_CORS_ORIGINS={CORS_ORIGINS}", "keyfob", "serve"]


def spa_module(issuer: str) -> str:
    """The page's JavaScript blocks as one module, with the test server's issuer."""
    blocks = re.findall(r"^```js\n(.*?)^```$", PAGE.read_text(), re.DOTALL | re.MULTILINE)
    code = "\n".join(blocks)
    assert code.count(ISSUER_LINE) == 1, "the page's issuer line changed"
    return code.replace(ISSUER_LINE, f"const issuer = new URL({json.dumps(issuer)});")


def certificate(directory: Path) -> tuple[Path, Path]:
    """A self-signed certificate for localhost and 127.0.0.1 (its own CA), and its key."""
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "localhost")])
    now = datetime.datetime.now(datetime.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=1))
        .add_extension(
            x509.SubjectAlternativeName(
                [x509.DNSName("localhost"), x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]
            ),
            critical=False,
        )
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(key, hashes.SHA256())
    )
    cert_path, key_path = directory / "cert.pem", directory / "key.pem"
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    return cert_path, key_path


@dataclass
class TlsServer:
    url: str
    env: dict[str, str]
    cert: Path

    def client(self) -> httpx.Client:
        return httpx.Client(verify=ssl.create_default_context(cafile=self.cert), timeout=10)


@pytest.fixture(scope="module")
def node() -> str:
    """``node``, with node_modules as package-lock.json pins it (``npm ci``, once)."""
    node = require_binary(shutil.which("node"), "node", "apt-get install -y nodejs npm")
    npm = require_binary(shutil.which("npm"), "npm", "apt-get install -y nodejs npm")
    lock = json.loads((PROJECT / "package-lock.json").read_text())
    pinned = lock["packages"]["node_modules/oauth4webapi"]["version"]
    installed = PROJECT / "node_modules" / "oauth4webapi" / "package.json"
    if not installed.is_file() or json.loads(installed.read_text())["version"] != pinned:
        done = subprocess.run(
            [npm, "ci", "--no-audit", "--no-fund", "--prefer-offline", "--loglevel=error"],
            cwd=PROJECT,
            capture_output=True,
            text=True,
            timeout=300,
            check=False,
        )
        assert done.returncode == 0, f"npm ci:\n{done.stdout}\n{done.stderr}"
    return node


@pytest.fixture
def server(tmp_path: Path) -> Iterator[TlsServer]:
    """keyfob over HTTPS on 127.0.0.1 (uvicorn with a throwaway certificate), configured
    and with the client registered as the page says, and one user."""
    cert, key = certificate(tmp_path)
    port = free_port()
    url = f"https://localhost:{port}"
    env = {
        **os.environ,
        "KEYFOB_STORE_URL": f"sqlite:///{tmp_path / 'keyfob.db'}",
        "KEYFOB_SECRET": SECRET,
        "KEYFOB_ISSUER": url,
        "KEYFOB_CORS_ORIGINS": CORS_ORIGINS,
        "KEYFOB_ACCESS_TTL": ACCESS_TTL,
        "KEYFOB_PASSWORD_PROFILE": "cheapest",
        "KEYFOB_SQLITE_SYNCHRONOUS": "normal",
        "KEYFOB_ACCESS_LOG": "off",
    }
    command = [
        sys.executable, "-m", "uvicorn", "keyfob.server.app:app_from_env", "--factory",
        "--host", "127.0.0.1", "--port", str(port), "--ssl-certfile", str(cert),
        "--ssl-keyfile", str(key), "--no-proxy-headers", "--log-level", "warning",
    ]  # fmt: skip
    log = tmp_path / "uvicorn.log"
    with log.open("ab") as out:
        process = subprocess.Popen(command, env=env, stdout=out, stderr=subprocess.STDOUT)
    tls = TlsServer(url, env, cert)
    try:
        with tls.client() as c:
            deadline = time.monotonic() + 30
            while True:
                assert process.poll() is None, log.read_text()
                assert time.monotonic() < deadline, log.read_text()
                try:
                    if c.get(url + "/.well-known/jwks.json").status_code == 200:
                        break
                except httpx.TransportError:
                    time.sleep(0.05)
            registered = c.post(
                url + "/auth/register", json={"username": "alice", "password": PASSWORD}
            )
            assert registered.status_code == 201, registered.text
        done = subprocess.run(
            [sys.executable, "-m", "keyfob.cli", *REGISTER],
            env=env,
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )
        assert done.returncode == 0, done.stderr
        yield tls
    finally:
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(timeout=15)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(timeout=5)


def run_spa(node: str, server: TlsServer, tmp_path: Path, mode: str) -> dict[str, Any]:
    """Run the page's code through driver.mjs; sign in when it asks. Its report."""
    module = tmp_path / "spa.mjs"
    module.write_text(spa_module(server.url))
    # Node finds "oauth4webapi" in a node_modules beside the module.
    (tmp_path / "node_modules").symlink_to(PROJECT / "node_modules", target_is_directory=True)
    env = {
        **os.environ,
        "SPA_MODULE": module.as_uri(),
        "API_URL": server.url + "/auth/me",
        "CLIENT_ID": "example-spa",
        "MODE": mode,
        "NODE_EXTRA_CA_CERTS": str(server.cert),
    }
    with subprocess.Popen(
        [node, str(PROJECT / "driver.mjs")],
        env=env,
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    ) as driver:
        assert driver.stdin is not None and driver.stdout is not None
        try:
            first = driver.stdout.readline()
            assert first, driver.communicate(timeout=NODE_TIMEOUT)[1]
            url = json.loads(first)["authorization_url"]
            with server.client() as browser:
                answer = sign_in(browser, url, "alice", PASSWORD)
            assert answer.status_code == 303, answer.text
            out, err = driver.communicate(answer.headers["location"] + "\n", timeout=NODE_TIMEOUT)
        finally:
            if driver.poll() is None:
                driver.kill()
    assert driver.returncode == 0, err
    report: dict[str, Any] = json.loads(out.splitlines()[-1])
    report["authorization_url"] = url
    return report


def refresh_with(server: TlsServer, refresh_token: str) -> httpx.Response:
    with server.client() as c:
        return c.post(
            server.url + "/oauth/token",
            data={
                "grant_type": "refresh_token",
                "refresh_token": refresh_token,
                "client_id": "example-spa",
            },
        )


def test_the_spa_signs_in_calls_refreshes_and_signs_out(
    node: str, server: TlsServer, tmp_path: Path
) -> None:
    """Code + PKCE, a rotation per call (one for two concurrent calls), then RFC 7009."""
    report = run_spa(node, server, tmp_path, "signout")
    assert "code_challenge_method=S256" in report["authorization_url"]
    assert report["address_bar"] == "https://app.example.org/"  # the code is gone from it
    assert report["session_storage"] == []  # the verifier and state too

    exchange, *refreshes, revocation = report["traffic"]
    assert exchange["form"]["grant_type"] == "authorization_code"
    assert exchange["status"] == 200, exchange["body"]
    # Three calls refreshed one after the other, then two concurrent calls shared one.
    assert report["calls"][:4] == [{"status": 200}] * 4
    assert [r["form"]["grant_type"] for r in refreshes] == ["refresh_token"] * 3
    assert all(r["status"] == 200 for r in refreshes)
    # Each refresh sent the refresh token the previous answer gave: rotation kept up with.
    previous = exchange
    for refresh in refreshes:
        assert refresh["form"]["refresh_token"] == previous["body"]["refresh_token"]
        assert refresh["body"]["refresh_token"] != refresh["form"]["refresh_token"]
        previous = refresh
    # signOut() revoked the newest refresh token, and the app forgot its tokens.
    assert revocation["endpoint"] == "/oauth/revoke"
    assert revocation["status"] == 200
    assert revocation["form"]["token"] == previous["body"]["refresh_token"]
    assert report["calls"][4]["message"] == "signed out"
    refused = refresh_with(server, previous["body"]["refresh_token"])
    assert (refused.status_code, refused.json()["error"]) == (400, "invalid_grant")


def test_a_session_ended_elsewhere_means_sign_in_again(
    node: str, server: TlsServer, tmp_path: Path
) -> None:
    """The refresh answers invalid_grant: the code forgets the tokens and says so."""
    report = run_spa(node, server, tmp_path, "revoked")
    assert report["revoked_elsewhere"] == 200
    refused, after = report["calls"]
    assert (refused["thrown"], refused["error"]) == ("ResponseBodyError", "invalid_grant")
    assert after["message"] == "signed out"


def test_the_spa_origin_may_call_the_token_endpoint(server: TlsServer) -> None:
    """KEYFOB_CORS_ORIGINS as the page sets it: the browser's preflight is granted, and
    keyfob's cookie routes stay closed to that origin."""
    preflight = {
        "Origin": CORS_ORIGINS,
        "Access-Control-Request-Method": "POST",
        "Access-Control-Request-Headers": "content-type",
    }
    with server.client() as c:
        token = c.options(server.url + "/oauth/token", headers=preflight)
        cookie_route = c.options(server.url + "/auth/refresh", headers=preflight)
    assert token.headers.get("access-control-allow-origin") == CORS_ORIGINS
    assert "access-control-allow-credentials" not in token.headers
    assert "access-control-allow-origin" not in cookie_route.headers
