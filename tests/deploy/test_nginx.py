"""deploy/nginx/keyfob.conf in front of a real ``keyfob serve``, over HTTPS with a local CA.

The shipped file is used as it is, with only the names a deployment replaces (host name,
ports, certificate paths) substituted. Through it: the metadata carries the HTTPS issuer,
the refresh cookie works as a ``Secure`` cookie, the session records the client's own
address (nginx replaces any X-Forwarded-For the client sent, keyfob trusts nginx's), plain
HTTP redirects to the fixed name whatever ``Host`` says, and the demo page works in
Chromium (which accepts exactly the test certificate's key, nothing else).
"""

from __future__ import annotations

import os
import shutil
import signal
import socket
import ssl
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest

from tests.deploy.tls import LocalTLS, make_local_tls
from tests.server.uvicorn_process import SECRET, free_port
from tests.services import unavailable

SITE = Path(__file__).parents[2] / "deploy" / "nginx" / "keyfob.conf"
CLIENT_ADDRESS = "127.0.0.2"  # loopback, but not the proxy's address: keyfob must see this
PASSWORD = "correct horse battery staple"
CHROMIUM = Path("/usr/bin/chromium")

pytestmark = pytest.mark.slow


@dataclass
class Deployment:
    https_url: str
    http_port: int
    tls: LocalTLS
    keyfob_log: Path

    def client(self) -> httpx.Client:
        return httpx.Client(
            base_url=self.https_url,
            transport=httpx.HTTPTransport(
                local_address=CLIENT_ADDRESS,
                verify=ssl.create_default_context(cafile=str(self.tls.ca_file)),
            ),
            timeout=10,
        )


def _wait_for_port(port: int, process: subprocess.Popen[bytes], log: Path) -> None:
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        if process.poll() is not None:
            pytest.fail(f"{process.args[0]} exited with {process.returncode}:\n{log.read_text()}")
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.5).close()
            return
        except OSError:
            time.sleep(0.05)
    pytest.fail(f"nothing listens on {port} after 30 s:\n{log.read_text()}")


def _stop(process: subprocess.Popen[bytes], sig: signal.Signals) -> None:
    if process.poll() is None:
        process.send_signal(sig)
        try:
            process.wait(timeout=15)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


def _render_site(https_port: int, http_port: int, keyfob_port: int, tls: LocalTLS) -> str:
    """The shipped file with what a deployment replaces: names, ports, certificate paths."""
    text = SITE.read_text()
    replacements = {
        "https://auth.example.com": f"https://localhost:{https_port}",
        "auth.example.com": "localhost",
        "server 127.0.0.1:8000;": f"server 127.0.0.1:{keyfob_port};",
        "listen 80;": f"listen 127.0.0.1:{http_port};",
        "listen 443 ssl http2;": f"listen 127.0.0.1:{https_port} ssl http2;",
        "/etc/ssl/keyfob/fullchain.pem": str(tls.cert_file),
        "/etc/ssl/keyfob/privkey.pem": str(tls.key_file),
    }
    for old, new in replacements.items():
        assert old in text, f"deploy/nginx/keyfob.conf no longer contains {old!r}"
        text = text.replace(old, new)
    # IPv6 listeners are not part of what this machine can test.
    return "\n".join(line for line in text.splitlines() if "listen [::]" not in line)


@pytest.fixture
def deployment(tmp_path: Path) -> Iterator[Deployment]:
    # Debian puts nginx in /usr/sbin, which a non-root PATH may not include.
    nginx = shutil.which("nginx", path=f"{os.environ.get('PATH', '')}:/usr/sbin")
    if nginx is None:
        unavailable("nginx is not installed: apt-get install nginx")
    tls = make_local_tls(tmp_path)
    keyfob_port, https_port, http_port = free_port(), free_port(), free_port()
    https_url = f"https://localhost:{https_port}"

    keyfob_log = tmp_path / "keyfob.log"
    env = {
        **os.environ,
        "KEYFOB_STORE_URL": f"sqlite:///{tmp_path / 'keyfob.db'}",
        "KEYFOB_SECRET": SECRET,
        "KEYFOB_ISSUER": https_url,
        "KEYFOB_FORWARDED_ALLOW_IPS": "127.0.0.1",
        "KEYFOB_PASSWORD_PROFILE": "cheapest",
    }
    with keyfob_log.open("wb") as out:
        keyfob = subprocess.Popen(
            [sys.executable, "-m", "keyfob.cli", "serve", "--port", str(keyfob_port)],
            env=env, stdout=out, stderr=subprocess.STDOUT,
        )  # fmt: skip

    (tmp_path / "keyfob.conf").write_text(_render_site(https_port, http_port, keyfob_port, tls))
    main_conf = tmp_path / "nginx.conf"
    main_conf.write_text(
        f"""
worker_processes 1;
pid {tmp_path}/nginx.pid;
error_log {tmp_path}/nginx-error.log warn;
events {{ worker_connections 256; }}
http {{
    access_log {tmp_path}/nginx-access.log;
    client_body_temp_path {tmp_path}/client_body;
    proxy_temp_path {tmp_path}/proxy;
    fastcgi_temp_path {tmp_path}/fastcgi;
    uwsgi_temp_path {tmp_path}/uwsgi;
    scgi_temp_path {tmp_path}/scgi;
    include {tmp_path}/keyfob.conf;
}}
"""
    )
    nginx_log = tmp_path / "nginx.out"
    with nginx_log.open("wb") as out:
        proxy = subprocess.Popen(
            [nginx, "-p", str(tmp_path), "-c", str(main_conf), "-g", "daemon off;"],
            stdout=out, stderr=subprocess.STDOUT,
        )  # fmt: skip
    try:
        _wait_for_port(keyfob_port, keyfob, keyfob_log)
        _wait_for_port(https_port, proxy, nginx_log)
        yield Deployment(https_url, http_port, tls, keyfob_log)
    finally:
        _stop(proxy, signal.SIGQUIT)
        _stop(keyfob, signal.SIGINT)
    assert "kfrt_" not in keyfob_log.read_text(errors="replace")


def test_the_issuer_and_hsts_come_through_tls(deployment: Deployment) -> None:
    with deployment.client() as client:
        answer = client.get("/.well-known/oauth-authorization-server")
    assert answer.status_code == 200
    assert answer.json()["issuer"] == deployment.https_url
    assert answer.headers["strict-transport-security"].startswith("max-age=")
    assert "server" not in answer.headers or "nginx/" not in answer.headers["server"]


def test_cookie_sessions_work_through_the_proxy_with_the_clients_own_address(
    deployment: Deployment,
) -> None:
    origin = {"Origin": deployment.https_url}
    with deployment.client() as client:
        registered = client.post("/auth/register", json={"username": "erin", "password": PASSWORD})
        assert registered.status_code == 201
        # A forged X-Forwarded-For from the client is replaced by nginx, not believed.
        login = client.post(
            "/auth/login",
            json={"username": "erin", "password": PASSWORD},
            headers={**origin, "X-Forwarded-For": "203.0.113.66"},
        )
        assert login.status_code == 200, login.text
        set_cookie = login.headers["set-cookie"]
        assert set_cookie.startswith("__Secure-keyfob_refresh=kfrt_")
        assert "Secure" in set_cookie and "HttpOnly" in set_cookie
        first = client.cookies["__Secure-keyfob_refresh"]

        refreshed = client.post("/auth/refresh", headers={**origin, "X-Keyfob-CSRF": "1"})
        assert refreshed.status_code == 200, refreshed.text
        assert client.cookies["__Secure-keyfob_refresh"] != first

        bearer = {"Authorization": f"Bearer {refreshed.json()['access_token']}"}
        sessions = client.get("/auth/sessions", headers=bearer)
    assert sessions.status_code == 200
    [session] = sessions.json()["sessions"]
    assert session["device"]["ip"] == CLIENT_ADDRESS


def test_plain_http_redirects_to_the_fixed_name_whatever_host_says(deployment: Deployment) -> None:
    answer = httpx.get(
        f"http://127.0.0.1:{deployment.http_port}/auth/login?x=1",
        headers={"Host": "evil.example"},
        follow_redirects=False,
        timeout=10,
    )
    assert answer.status_code == 308
    assert answer.headers["location"] == f"{deployment.https_url}/auth/login?x=1"


def test_the_demo_page_logs_in_over_https_in_chromium(deployment: Deployment) -> None:
    if not CHROMIUM.exists():
        unavailable("Chromium is not installed: apt-get install chromium")
    from playwright.sync_api import expect, sync_playwright

    from tests.browser.conftest import CHROMIUM_ARGS

    # Chromium accepts this one key's certificate and still verifies everything else
    # about the TLS connection (name, validity); no blanket --ignore-certificate-errors.
    args = [*CHROMIUM_ARGS, f"--ignore-certificate-errors-spki-list={deployment.tls.spki_sha256}"]
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=str(CHROMIUM), headless=True, args=args)
        try:
            context = browser.new_context()
            page = context.new_page()
            page.goto(deployment.https_url + "/")
            page.fill("#username", "frank")
            page.fill("#password", PASSWORD)
            page.click("#register")
            expect(page.locator("#auth-status")).to_contain_text("Registered frank")
            page.click("#login")
            expect(page.locator("#auth-status")).to_contain_text("Signed in as frank")
            cookie = {c["name"]: c for c in context.cookies()}["__Secure-keyfob_refresh"]
            assert cookie["secure"] is True and cookie["httpOnly"] is True
        finally:
            browser.close()
