"""``examples/native_app_loopback.py`` works as docs/howto/native-app.md says.

The checks the app makes on the redirect run offline. The whole flow runs against a real
``keyfob serve``: the client is registered with the exact ``keyfob clients add`` command
of the how-to, and a stand-in for the system browser signs in on keyfob's pages with
plain form posts (``tests/oauth_pages.py``).
"""

from __future__ import annotations

import base64
import hashlib
import importlib.util
import json
import re
import shlex
import subprocess
import sys
import threading
from collections.abc import Iterator
from pathlib import Path
from types import ModuleType
from urllib.parse import quote, urlencode, urlsplit

import httpx
import pytest

from .conftest import PASSWORD
from .oauth_pages import sign_in
from .server.uvicorn_process import UvicornProcess

ROOT = Path(__file__).resolve().parent.parent
EXAMPLE = ROOT / "examples" / "native_app_loopback.py"
HOW_TO = ROOT / "docs" / "howto" / "native-app.md"
ISSUER = "https://auth.example.com"
#: The command docs/howto/native-app.md gives, word for word.
REGISTER = [
    "clients", "add", "Example native app", "--client-id", "example-native-app",
    "--auth-method", "none", "--redirect-uri", "http://127.0.0.1/callback",
]  # fmt: skip


@pytest.fixture(scope="module")
def app() -> ModuleType:
    spec = importlib.util.spec_from_file_location("examples_native_app_loopback", EXAMPLE)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def documented_commands(page: Path, program: str) -> list[list[str]]:
    """The shell commands of a page's ``sh`` blocks that start with ``program``."""
    blocks = re.findall(r"^```sh\n(.*?)^```$", page.read_text(), re.DOTALL | re.MULTILINE)
    lines = "\n".join(blocks).replace("\\\n", " ").splitlines()
    return [shlex.split(line) for line in lines if line.startswith(program + " ")]


def test_the_how_to_registers_the_client_as_this_test_does() -> None:
    """The first ``keyfob clients add`` of the how-to is the one run here, word for word."""
    assert documented_commands(HOW_TO, "keyfob")[0] == ["keyfob", *REGISTER]


def callback(**params: str) -> str:
    return urlencode(params)


# The checks on the redirect, offline.


def test_pkce_pair_is_an_s256_pair_of_the_allowed_shape(app: ModuleType) -> None:
    """The verifier is 43-128 unreserved characters and the challenge its S256 (RFC 7636)."""
    verifier, challenge = app.pkce_pair()
    assert re.fullmatch(r"[A-Za-z0-9._~-]{43,128}", verifier)
    digest = hashlib.sha256(verifier.encode()).digest()
    assert challenge == base64.urlsafe_b64encode(digest).rstrip(b"=").decode()
    assert app.pkce_pair()[0] != verifier


def test_the_code_of_a_matching_redirect_is_taken(app: ModuleType) -> None:
    """Right state and iss: the code comes out."""
    query = callback(code="abc", state="s1", iss=ISSUER)
    assert app.read_callback(query, state="s1", issuer=ISSUER, iss_required=True) == "abc"


@pytest.mark.parametrize(
    ("query", "message"),
    [
        (callback(code="abc", state="other", iss=ISSUER), "state"),
        (callback(code="abc", iss=ISSUER), "state"),
        (callback(code="abc", state="s1", iss="https://evil.example"), "evil.example"),
        (callback(code="abc", state="s1"), "None"),
        (callback(error="access_denied", state="s1", iss=ISSUER), "access_denied"),
        (callback(state="s1", iss=ISSUER), "no code"),
    ],
    ids=["other-state", "no-state", "other-issuer", "no-iss", "error", "no-code"],
)
def test_a_redirect_that_is_not_ours_is_refused(app: ModuleType, query: str, message: str) -> None:
    """A forged or replayed state, a mix-up (RFC 9207), a refusal and an empty answer."""
    with pytest.raises(app.SignInError, match=message):
        app.read_callback(query, state="s1", issuer=ISSUER, iss_required=True)


def test_iss_is_checked_when_present_even_if_not_announced(app: ModuleType) -> None:
    """A server that does not announce iss yet sends one: it must still be ours."""
    with pytest.raises(app.SignInError, match="evil"):
        app.read_callback(
            callback(code="c", state="s", iss="https://evil.example"),
            state="s",
            issuer=ISSUER,
            iss_required=False,
        )
    assert app.read_callback(callback(code="c", state="s"), state="s", issuer=ISSUER,
                             iss_required=False) == "c"  # fmt: skip


def test_the_loopback_listener_takes_the_first_callback_only(app: ModuleType) -> None:
    """Other paths get 404 and leave it waiting; the callback ends the wait."""
    with app.CallbackServer("/callback") as server:
        assert re.fullmatch(r"http://127\.0\.0\.1:[0-9]+/callback", server.redirect_uri)
        base = server.redirect_uri.removesuffix("/callback")
        statuses: list[int] = []

        def browser() -> None:
            with httpx.Client(timeout=10) as c:
                statuses.append(c.get(base + "/favicon.ico").status_code)
                statuses.append(c.get(server.redirect_uri + "?code=c&state=s").status_code)

        thread = threading.Thread(target=browser)
        thread.start()
        assert server.wait(timeout=10) == "code=c&state=s"
        thread.join(10)
    assert statuses == [404, 200]


def test_no_redirect_in_time_is_an_error(app: ModuleType) -> None:
    with app.CallbackServer("/callback") as server, pytest.raises(app.SignInError, match="time"):
        server.wait(timeout=0.2)


# The whole flow against keyfob serve.


class Browser:
    """Stands in for the system browser: signs in on keyfob's page and, when keyfob
    redirects, follows the redirect to the app's loopback listener."""

    def __init__(self, username: str, password: str) -> None:
        self.username = username
        self.password = password
        self.answer: httpx.Response | None = None
        self.error: BaseException | None = None
        self.thread: threading.Thread | None = None

    def open(self, url: str) -> None:
        self.thread = threading.Thread(target=self._run, args=(url,), daemon=True)
        self.thread.start()

    def _run(self, url: str) -> None:
        try:
            with httpx.Client(timeout=10) as c:
                self.answer = answer = sign_in(c, url, self.username, self.password)
                if answer.status_code == 303:
                    c.get(answer.headers["location"])  # the app's loopback listener
        except BaseException as exc:  # re-raised by join(), in the test
            self.error = exc

    def join(self) -> httpx.Response:
        """keyfob's last answer: the redirect, or the page it showed instead."""
        assert self.thread is not None
        self.thread.join(30)
        if self.error is not None:
            raise self.error
        assert self.answer is not None
        return self.answer


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[UvicornProcess]:
    """One server for the module: each test signs in anew, so they share nothing else."""
    # No grace window: a spent refresh token is reuse at once, as the how-to describes.
    directory = tmp_path_factory.mktemp("native-app")
    with UvicornProcess(directory, serve=True, env={"KEYFOB_GRACE": "0"}) as s:
        done = subprocess.run(
            [sys.executable, "-m", "keyfob.cli", *REGISTER],
            env=s.env,
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )
        assert done.returncode == 0, done.stderr
        assert done.stdout.splitlines()[0] == "client_id: example-native-app"
        registered = httpx.post(
            f"{s.url}/auth/register", json={"username": "alice", "password": PASSWORD}
        )
        assert registered.status_code == 201, registered.text
        yield s


def run_example(server: UvicornProcess, browser: Browser) -> tuple[str, list[str]]:
    """``python examples/native_app_loopback.py ... --no-browser --refresh --revoke`` as
    the how-to runs it; the browser opens the URL it prints. Its exit status and lines."""
    command = [
        sys.executable, str(EXAMPLE), "--issuer", server.url, "--client-id", "example-native-app",
        "--no-browser", "--refresh", "--revoke",
    ]  # fmt: skip
    with subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True) as p:
        assert p.stdout is not None
        first = p.stdout.readline()
        assert first.startswith("Sign in at: "), first + p.communicate(timeout=30)[1]
        browser.open(first.removeprefix("Sign in at: ").strip())
        out, err = p.communicate(timeout=60)
    return err if p.returncode else "", [first, *out.splitlines()]


@pytest.mark.slow
def test_the_example_signs_in_refreshes_and_signs_out(server: UvicornProcess) -> None:
    """The script as the how-to runs it: the code flow, one refresh, then revocation."""
    browser = Browser("alice", PASSWORD)
    error, lines = run_example(server, browser)
    assert error == ""
    redirect = urlsplit(browser.join().headers["location"])
    assert (redirect.scheme, redirect.hostname, redirect.path) == ("http", "127.0.0.1", "/callback")
    assert redirect.port is not None
    authorize = urlsplit(lines[0].removeprefix("Sign in at: ").strip())
    assert (
        f"{authorize.scheme}://{authorize.netloc}{authorize.path}"
        == server.url + "/oauth/authorize"
    )
    assert "code_challenge_method=S256" in authorize.query
    assert lines[-1] == "signed out"
    first, second = (json.loads(doc) for doc in split_json("\n".join(lines[1:-1])))
    assert first["token_type"] == second["token_type"] == "Bearer"
    assert first["refresh_token"] != second["refresh_token"]  # rotated
    # Signed out: the last refresh token is revoked, and the first was spent anyway.
    for spent in (first["refresh_token"], second["refresh_token"]):
        answer = httpx.post(
            f"{server.url}/oauth/token",
            data={"grant_type": "refresh_token", "refresh_token": spent,
                  "client_id": "example-native-app"},
        )  # fmt: skip
        assert (answer.status_code, answer.json()["error"]) == (400, "invalid_grant")


def split_json(text: str) -> list[str]:
    """The JSON documents printed one after the other (each pretty-printed)."""
    decoder = json.JSONDecoder()
    docs, i = [], 0
    while i < len(text):
        if text[i].isspace():
            i += 1
            continue
        _, end = decoder.raw_decode(text, i)
        docs.append(text[i:end])
        i = end
    return docs


@pytest.mark.slow
def test_rotation_and_reuse_as_the_how_to_says(app: ModuleType, server: UvicornProcess) -> None:
    """Keep the new refresh token each time: the spent one again ends the session."""
    browser = Browser("alice", PASSWORD)
    metadata, tokens = app.sign_in(
        server.url, "example-native-app", open_browser=browser.open, timeout=30
    )
    assert browser.join().status_code == 303
    bearer = {"Authorization": f"Bearer {tokens['access_token']}"}
    assert httpx.get(f"{server.url}/auth/me", headers=bearer).status_code == 200

    first = tokens["refresh_token"]
    tokens = app.refresh(metadata, client_id="example-native-app", refresh_token=first)
    assert tokens["refresh_token"] != first
    # The spent token again (the server's grace window is 0 here) is reuse: the session
    # ends, and the newest token stops working too.
    with pytest.raises(app.SignInError, match="invalid_grant"):
        app.refresh(metadata, client_id="example-native-app", refresh_token=first)
    with pytest.raises(app.SignInError, match="invalid_grant"):
        app.refresh(metadata, client_id="example-native-app", refresh_token=tokens["refresh_token"])


@pytest.mark.slow
def test_a_wrong_password_gives_no_code(app: ModuleType, server: UvicornProcess) -> None:
    """keyfob shows its login page again with an alert; the app gets nothing, times out."""
    browser = Browser("alice", "not the password")
    with pytest.raises(app.SignInError, match="time"):
        app.sign_in(server.url, "example-native-app", open_browser=browser.open, timeout=3)
    answer = browser.join()
    assert answer.status_code == 200
    assert 'role="alert"' in answer.text


def authorize_url(server: UvicornProcess, **overrides: str) -> str:
    params = {
        "response_type": "code",
        "client_id": "example-native-app",
        "redirect_uri": "http://127.0.0.1:5555/callback",
        "state": "s1",
        "code_challenge": "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM",
        "code_challenge_method": "S256",
        **overrides,
    }
    return f"{server.url}/oauth/authorize?{urlencode(params)}"


@pytest.mark.slow
@pytest.mark.parametrize(
    "redirect_uri",
    ["http://127.0.0.1:5555/other", "http://localhost:5555/callback",
     "com.example.app:/callback"],
)  # fmt: skip
def test_an_unregistered_redirect_uri_gets_an_error_page(
    server: UvicornProcess, redirect_uri: str
) -> None:
    """What the how-to says keyfob refuses: never a redirect to a URI it does not know."""
    answer = httpx.get(authorize_url(server, redirect_uri=redirect_uri))
    assert answer.status_code == 400
    assert "location" not in answer.headers


@pytest.mark.slow
def test_plain_pkce_is_refused_with_a_redirect(server: UvicornProcess) -> None:
    """code_challenge_method=plain: back to the app with invalid_request, state and iss."""
    answer = httpx.get(authorize_url(server, code_challenge_method="plain"))
    assert answer.status_code in (302, 303)
    location = urlsplit(answer.headers["location"])
    assert location.path == "/callback"
    assert "error=invalid_request" in location.query
    assert "state=s1" in location.query
    assert f"iss={quote(server.url, safe='')}" in location.query
