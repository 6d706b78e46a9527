"""Flask, Django (plain and DRF) and FastAPI services that trust a real ``keyfob serve``.

Each example app in ``examples/`` is driven in-process by its framework's test client,
verifying tokens that a real keyfob server process issued, from that server's JWKS over
HTTP; and each example is started as its README command says, beside the server.
Scoped tokens (first-party logins carry no scope) come from an in-process issuer whose
JWKS the verifier is given (``tests/resource/issuer.py``).
"""

from __future__ import annotations

import importlib.util
import os
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from types import ModuleType

import httpx
import pytest

from keyfob.resource_server import JWKSPolicy, RemoteVerifier
from tests.resource.issuer import ISSUER, JWKSEndpoint, MintedTokens, mint_tokens
from tests.server.uvicorn_process import UvicornProcess, free_port

ROOT = Path(__file__).parents[2]
EXAMPLES = ROOT / "examples"
PASSWORD = "correct horse battery staple"


class Keyfob:
    def __init__(self, url: str, token: str) -> None:
        self.url = url
        self.token = token

    def bearer(self, token: str | None = None) -> dict[str, str]:
        return {"Authorization": f"Bearer {token or self.token}"}


@pytest.fixture(scope="module")
def keyfob(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Keyfob]:
    with UvicornProcess(tmp_path_factory.mktemp("keyfob")) as server:
        with httpx.Client(base_url=server.url, timeout=10) as client:
            assert (
                client.post(
                    "/auth/register", json={"username": "ann", "password": PASSWORD}
                ).status_code
                == 201
            )
            login = client.post(
                "/auth/login", json={"username": "ann", "password": PASSWORD, "transport": "body"}
            )
            assert login.status_code == 200, login.text
        yield Keyfob(server.url, login.json()["access_token"])


@pytest.fixture(scope="module")
def minted() -> MintedTokens:
    return mint_tokens()


_made: list[RemoteVerifier] = []


@pytest.fixture(autouse=True)
def _close_verifiers() -> Iterator[None]:
    """Verifiers hold an HTTP client; close those a test made (Flask apps have no shutdown)."""
    yield
    while _made:
        _made.pop().close()


def made(verifier: RemoteVerifier) -> RemoteVerifier:
    _made.append(verifier)
    return verifier


def scoped_verifier(minted: MintedTokens) -> RemoteVerifier:
    return made(RemoteVerifier(ISSUER, http_client=JWKSEndpoint(minted.jwks).client()))


def unreachable_verifier() -> RemoteVerifier:
    port = free_port()  # nothing listens there
    return made(RemoteVerifier(f"http://127.0.0.1:{port}", policy=JWKSPolicy(timeout=1)))


def load_example(name: str) -> ModuleType:
    spec = importlib.util.spec_from_file_location(f"examples_{name}", EXAMPLES / f"{name}.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # Django finds its URLconf by module name
    spec.loader.exec_module(module)
    return module


def _challenge(response: object) -> str:
    return response.headers["WWW-Authenticate"]  # type: ignore[attr-defined,no-any-return]


# --- Flask ------------------------------------------------------------------------------


def test_flask_api_trusts_keyfob_tokens(keyfob: Keyfob) -> None:
    from keyfob.integrations.flask import Keyfob as FlaskKeyfob

    app = load_example("flask_api").create_app({"KEYFOB_ISSUER": keyfob.url})
    made(FlaskKeyfob.verifier_of(app))
    client = app.test_client()
    assert client.get("/health").status_code == 200

    missing = client.get("/notes")
    assert missing.status_code == 401
    assert missing.json["error"] == "invalid_token"
    assert "error=" not in _challenge(missing), "no credentials: a bare challenge (RFC 6750 §3.1)"

    assert client.get("/notes", headers=keyfob.bearer()).json == []

    forged = client.get("/notes", headers=keyfob.bearer(keyfob.token[:-3] + "AAA"))
    assert forged.status_code == 401 and 'error="invalid_token"' in _challenge(forged)

    unscoped = client.post("/notes", json={"text": "hi"}, headers=keyfob.bearer())
    assert unscoped.status_code == 403
    assert unscoped.json["error"] == "insufficient_scope"
    assert 'scope="notes:write"' in _challenge(unscoped)


def test_flask_api_checks_scopes(minted: MintedTokens) -> None:
    app = load_example("flask_api").create_app(verifier=scoped_verifier(minted))
    client = app.test_client()
    headers = {"Authorization": f"Bearer {minted.tokens['read write']}"}
    created = client.post("/notes", json={"text": "hi"}, headers=headers)
    assert created.status_code == 201 and created.json["text"] == "hi"
    read_only = {"Authorization": f"Bearer {minted.tokens['read']}"}
    assert client.post("/notes", json={"text": "no"}, headers=read_only).status_code == 403


def test_flask_api_answers_503_while_the_issuer_is_unreachable(keyfob: Keyfob) -> None:
    app = load_example("flask_api").create_app(verifier=unreachable_verifier())
    answer = app.test_client().get("/notes", headers=keyfob.bearer())
    assert answer.status_code == 503
    assert answer.json["error"] == "temporarily_unavailable"
    assert int(answer.headers["Retry-After"]) >= 1


# --- Django and DRF ---------------------------------------------------------------------


@pytest.fixture(scope="module")
def django_example() -> ModuleType:
    return load_example("django_api")


@pytest.fixture
def django_client(django_example: ModuleType, keyfob: Keyfob) -> Iterator[object]:
    from django.test import Client, override_settings

    with override_settings(KEYFOB={"ISSUER": keyfob.url}):
        yield Client()


def test_django_middleware_and_decorator(django_client, keyfob: Keyfob) -> None:  # type: ignore[no-untyped-def]
    assert django_client.get("/health").json() == {"status": "ok", "user": None}
    me = django_client.get("/health", headers=keyfob.bearer()).json()["user"]
    assert me  # the middleware verified the token

    missing = django_client.get("/notes")
    assert missing.status_code == 401 and missing.json()["error"] == "invalid_token"
    assert "error=" not in _challenge(missing)
    forged = django_client.get("/notes", headers=keyfob.bearer("x.y.z"))
    assert forged.status_code == 401 and 'error="invalid_token"' in _challenge(forged)
    assert django_client.get("/notes", headers=keyfob.bearer()).json() == {"user": me, "notes": []}


def test_django_rest_framework_authentication_and_scopes(
    django_client,
    keyfob: Keyfob,
    minted: MintedTokens,
    monkeypatch: pytest.MonkeyPatch,  # type: ignore[no-untyped-def]
) -> None:
    missing = django_client.get("/api/notes")
    assert missing.status_code == 401
    assert _challenge(missing) == 'Bearer realm="api"'
    forged = django_client.get("/api/notes", headers=keyfob.bearer(keyfob.token[::-1]))
    assert forged.status_code == 401
    assert 'error="invalid_token"' in _challenge(forged)

    assert django_client.get("/api/notes", headers=keyfob.bearer()).status_code == 200
    assert (
        django_client.post("/api/notes", {"text": "x"}, headers=keyfob.bearer()).status_code == 403
    )

    import keyfob.integrations.django as integration

    monkeypatch.setattr(integration, "_verifier", scoped_verifier(minted))
    writer = {"Authorization": f"Bearer {minted.tokens['read write']}"}
    created = django_client.post("/api/notes", {"text": "hello"}, headers=writer)
    assert created.status_code == 201 and created.json() == {"notes": ["hello"]}


def test_django_answers_503_while_the_issuer_is_unreachable(
    django_client,
    keyfob: Keyfob,
    monkeypatch: pytest.MonkeyPatch,  # type: ignore[no-untyped-def]
) -> None:
    import keyfob.integrations.django as integration

    monkeypatch.setattr(integration, "_verifier", unreachable_verifier())
    plain = django_client.get("/notes", headers=keyfob.bearer())
    assert plain.status_code == 503 and int(plain["Retry-After"]) >= 1
    drf = django_client.get("/api/notes", headers=keyfob.bearer())
    assert drf.status_code == 503 and int(drf["Retry-After"]) >= 1


# --- FastAPI ----------------------------------------------------------------------------


async def test_fastapi_resource_server(keyfob: Keyfob, minted: MintedTokens) -> None:
    app = load_example("fastapi_resource").build_app(RemoteVerifier(keyfob.url))
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app)
        async with httpx.AsyncClient(transport=transport, base_url="http://api.test") as client:
            assert (await client.get("/notes")).status_code == 401
            assert (await client.get("/notes", headers=keyfob.bearer())).json() == []
            refused = await client.post("/notes?text=x", headers=keyfob.bearer())
            assert refused.status_code == 403
            health = (await client.get("/health")).json()
            assert health["keys_loaded"] >= 1 and health["keys_fresh"] is True
            schema = (await client.get("/openapi.json")).json()
            assert "keyfob" in schema["components"]["securitySchemes"]


async def test_fastapi_resource_server_answers_503_while_the_issuer_is_unreachable(
    keyfob: Keyfob,
) -> None:
    verifier = unreachable_verifier()
    app = load_example("fastapi_resource").build_app(verifier)
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app)
        async with httpx.AsyncClient(transport=transport, base_url="http://api.test") as client:
            answer = await client.get("/notes", headers=keyfob.bearer())
    assert answer.status_code == 503
    assert answer.json()["error"] == "temporarily_unavailable"
    assert int(answer.headers["Retry-After"]) >= 1


# --- the examples as their READMEs start them -------------------------------------------


def _wait_for(url: str, process: subprocess.Popen[bytes], log: Path) -> None:
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        if process.poll() is not None:
            pytest.fail(f"the example exited with {process.returncode}:\n{log.read_text()}")
        try:
            httpx.get(url, timeout=1)
            return
        except httpx.TransportError:
            time.sleep(0.1)
    pytest.fail(f"the example did not answer within 30 s:\n{log.read_text()}")


@pytest.mark.slow
@pytest.mark.parametrize(
    ("name", "command"),
    [
        ("flask", ["-m", "flask", "--app", "examples/flask_api.py", "run", "--port", "{port}"]),
        (
            "fastapi",
            [
                "-m",
                "uvicorn",
                "--factory",
                "examples.fastapi_resource:build_app",
                "--port",
                "{port}",
            ],
        ),
        ("django", ["examples/django_api.py", "runserver", "--noreload", "{port}"]),
    ],
)
def test_each_example_runs_beside_keyfob_serve(
    keyfob: Keyfob, tmp_path: Path, name: str, command: list[str]
) -> None:
    port = free_port()
    log = tmp_path / f"{name}.log"
    env = {**os.environ, "KEYFOB_ISSUER": keyfob.url}
    args = [sys.executable, *(part.format(port=port) for part in command)]
    with log.open("wb") as out:
        process = subprocess.Popen(args, cwd=ROOT, env=env, stdout=out, stderr=subprocess.STDOUT)
    try:
        base = f"http://127.0.0.1:{port}"
        _wait_for(base + "/health", process, log)
        assert httpx.get(base + "/notes", timeout=10).status_code == 401
        answer = httpx.get(base + "/notes", headers=keyfob.bearer(), timeout=10)
        assert answer.status_code == 200, answer.text
    finally:
        process.terminate()
        try:
            process.wait(10)
        except subprocess.TimeoutExpired:
            process.kill()
    with socket.socket() as probe:
        assert probe.connect_ex(("127.0.0.1", port)) != 0, "the example stopped"


# --- the revocation feed from each framework's configuration ----------------------------


def test_flask_config_turns_the_revocation_feed_on() -> None:
    from keyfob.integrations.flask import Keyfob as FlaskKeyfob

    issuer = f"http://127.0.0.1:{free_port()}"  # nothing listens: the feed only retries
    config = {
        "KEYFOB_ISSUER": issuer,
        "KEYFOB_FEED_CLIENT_ID": "notes-api",
        "KEYFOB_FEED_CLIENT_SECRET": "s3cret",
        "KEYFOB_FEED_MODE": "fail-closed",
    }
    verifier = made(FlaskKeyfob.verifier_of(load_example("flask_api").create_app(config)))
    feed = verifier.health().feed
    assert feed is not None and feed.mode == "fail-closed"
    plain = made(
        FlaskKeyfob.verifier_of(load_example("flask_api").create_app({"KEYFOB_ISSUER": issuer}))
    )
    assert plain.health().feed is None


def test_django_settings_turn_the_revocation_feed_on(django_example: ModuleType) -> None:
    from django.test import override_settings

    import keyfob.integrations.django as integration
    from keyfob.exceptions import ConfigurationError

    issuer = f"http://127.0.0.1:{free_port()}"
    feed = {"CLIENT_ID": "notes-api", "CLIENT_SECRET": "s3cret"}
    with override_settings(KEYFOB={"ISSUER": issuer, "REVOCATION_FEED": feed}):
        health = integration.get_verifier().health().feed
        assert health is not None and health.mode == "fail-open"
    incomplete = {"ISSUER": issuer, "REVOCATION_FEED": {"CLIENT_ID": "x"}}
    with override_settings(KEYFOB=incomplete), pytest.raises(ConfigurationError, match="SECRET"):
        integration.get_verifier()
