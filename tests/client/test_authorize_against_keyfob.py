"""KeyfobAuth.authorize against a real ``keyfob serve``: the person signs in on keyfob's
own page (form posts standing in for the browser, per the page contract), the code comes
back to the client's loopback listener, and the auth then refreshes at /oauth/token."""

from __future__ import annotations

import base64
import json
import subprocess
import sys
import threading
import time
from collections.abc import Iterator

import httpx
import pytest

from keyfob.client import AuthorizationFailed, KeyfobAuth, SessionEnded

from ..oauth_pages import sign_in
from ..server.uvicorn_process import UvicornProcess

pytestmark = pytest.mark.slow

PASSWORD = "correct horse battery staple"


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[UvicornProcess]:
    with UvicornProcess(tmp_path_factory.mktemp("authorize"), serve=True) as s:
        done = subprocess.run(
            [
                sys.executable,
                "-m",
                "keyfob.cli",
                "clients",
                "add",
                "My CLI",
                "--client-id",
                "my-cli",
                "--auth-method",
                "none",
                "--redirect-uri",
                "http://127.0.0.1/callback",
                "--scope",
                "openid",
            ],
            env=s.env,
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )
        assert done.returncode == 0, done.stderr
        r = httpx.post(f"{s.url}/auth/register", json={"username": "carol", "password": PASSWORD})
        assert r.status_code == 201, r.text
        yield s


def person(password: str, *, decision_seen: list[int] | None = None) -> object:
    """A browser run by a person who signs in with ``password`` (in another thread, as
    a real browser is another process)."""

    def open_browser(url: str) -> bool:
        def run() -> None:
            with httpx.Client(timeout=10) as c:
                answer = sign_in(c, url, "carol", password)
                if decision_seen is not None:
                    decision_seen.append(answer.status_code)
                if answer.status_code == 303:
                    c.get(answer.headers["location"])

        threading.Thread(target=run, daemon=True).start()
        return True

    return open_browser


def _claims(jwt: str) -> dict[str, object]:
    payload = jwt.split(".")[1]
    claims: dict[str, object] = json.loads(
        base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4))
    )
    return claims


def test_a_person_signs_in_in_the_browser_and_the_program_refreshes(server: UvicornProcess) -> None:
    saved = []
    later = [0.0]
    auth = KeyfobAuth.authorize(
        server.url, "my-cli", scope="openid", open_browser=person(PASSWORD), wait=30,  # type: ignore[arg-type]
        token_saver=saved.append, clock=lambda: time.time() + later[0],
    )  # fmt: skip
    first = auth.tokens
    assert first.access_token is not None
    assert _claims(first.access_token)["client_id"] == "my-cli"
    assert saved == [first]
    with httpx.Client(auth=auth, base_url=server.url) as api:
        assert api.get("/auth/me").status_code == 200
        later[0] = 3600.0  # the program's clock says the access token has expired
        assert api.get("/auth/me").status_code == 200
    assert auth.tokens.refresh_token != first.refresh_token  # rotated at /oauth/token
    assert saved == [first, auth.tokens]
    assert auth.endpoint.url == server.url + "/oauth/token"


def test_a_wrong_password_gives_no_code_and_the_program_times_out(server: UvicornProcess) -> None:
    seen: list[int] = []
    with pytest.raises(AuthorizationFailed) as failed:
        KeyfobAuth.authorize(
            server.url, "my-cli", open_browser=person("wrong", decision_seen=seen), wait=3
        )  # type: ignore[arg-type]
    assert failed.value.error == "timeout"
    assert seen == [200]  # the login page again, no redirect


def test_an_unregistered_client_never_reaches_the_listener(server: UvicornProcess) -> None:
    seen: list[int] = []
    with pytest.raises(AuthorizationFailed):
        KeyfobAuth.authorize(
            server.url, "nobody", open_browser=person(PASSWORD, decision_seen=seen), wait=3
        )  # type: ignore[arg-type]
    assert seen == [400]  # keyfob's error page: never a redirect for an unknown client


def test_revoking_the_session_ends_the_program_s_auth(server: UvicornProcess) -> None:
    later = [0.0]
    auth = KeyfobAuth.authorize(
        server.url, "my-cli", open_browser=person(PASSWORD), wait=30,  # type: ignore[arg-type]
        clock=lambda: time.time() + later[0],
    )  # fmt: skip
    r = httpx.post(
        f"{server.url}/oauth/revoke",
        data={"token": auth.tokens.refresh_token, "client_id": "my-cli"},
    )
    assert r.status_code == 200
    with httpx.Client(auth=auth, base_url=server.url) as api:
        later[0] = 3600.0
        with pytest.raises(SessionEnded):
            api.get("/auth/me")
