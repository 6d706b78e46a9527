"""The keyfob command: admin commands on a real SQLite store, serve's checks and hand-off."""

from __future__ import annotations

import asyncio
import socket
from dataclasses import fields
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner, Result

from keyfob import SessionManager, Settings
from keyfob.cli import cli
from keyfob.cli.output import mask_url, render_table
from keyfob.cli.serve import APP_FACTORY
from keyfob.server.http11 import ConnectionLimits, LimitedHttpToolsProtocol
from keyfob.settings import SETTINGS
from keyfob.store import open_store
from keyfob.store.migrations import load_migrations

from .conftest import PASSWORD

#: Every KEYFOB_* variable a test may read or serve may set; blanked (= unset) per test.
ENV_NAMES = [s.env for s in SETTINGS]


@pytest.fixture
def store_url(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> str:
    for name in ENV_NAMES:
        monkeypatch.setenv(name, "")  # restored after the test, even if serve sets it
    url = f"sqlite:///{tmp_path / 'keyfob.db'}"
    monkeypatch.setenv("KEYFOB_STORE_URL", url)
    monkeypatch.setenv("KEYFOB_PASSWORD_PROFILE", "cheapest")
    return url


def run(*args: str, input: str | None = None) -> Result:
    return CliRunner().invoke(cli, list(args), input=input, catch_exceptions=False)


def add_user(name: str = "alice") -> None:
    result = run("users", "add", name, "--password-stdin", input=PASSWORD + "\n")
    assert result.exit_code == 0, result.output


def login(store_url: str, name: str = "alice", user_agent: str = "Firefox") -> str:
    """Log in through a manager on the same store (as the server would); the sid."""
    from keyfob import DeviceInfo

    async def go() -> str:
        settings = Settings.from_env({"issuer": "http://localhost"})
        async with SessionManager(settings, open_store(store_url, settings=settings)) as m:
            pair = await m.login(name, PASSWORD, device=DeviceInfo(user_agent, "10.0.0.7"))
            return pair.session.sid

    return asyncio.run(go())


def assert_one_line_error(result: Result, *needles: str) -> None:
    assert result.exit_code == 2
    lines = [line for line in result.stderr.splitlines() if line.startswith("Error:")]
    assert len(lines) == 1, result.stderr
    assert "Traceback" not in result.output
    for needle in needles:
        assert needle in lines[0]


def test_serve_help_lists_every_setting() -> None:
    """`keyfob serve --help` names every KEYFOB_* variable (spec §8)."""
    result = run("serve", "--help")
    assert result.exit_code == 0
    for f in fields(Settings):
        assert f"KEYFOB_{f.name.upper()}" in result.output
    for flag in ("--host", "--port", "--workers", "--access-ttl", "--store-url"):
        assert flag in result.output
    assert "--secret " not in result.output, "the secret is never a flag (ps would show it)"


def test_users_add_and_list(store_url: str) -> None:
    """users add reads the password from stdin; users list shows an aligned table."""
    add_user("alice")
    add_user("bob")
    result = run("users", "list")
    assert result.exit_code == 0
    lines = result.output.splitlines()
    assert lines[0].split() == ["USERNAME", "ID", "CREATED", "LIVE", "SESSIONS"]
    assert [line.split()[0] for line in lines[1:]] == ["alice", "bob"]
    assert lines[1].index(lines[1].split()[1]) == lines[0].index("ID"), "columns align"


def test_users_add_prompts_with_confirmation(store_url: str) -> None:
    """Without --password-stdin the password is prompted for twice, hidden."""
    result = run("users", "add", "carol", input=f"{PASSWORD}\n{PASSWORD}\n")
    assert result.exit_code == 0, result.output
    assert "created user carol" in result.output
    assert PASSWORD not in result.output


def test_users_add_refusals(store_url: str) -> None:
    """A taken username and a weak password are one-line errors."""
    add_user("alice")
    again = run("users", "add", "alice", "--password-stdin", input=PASSWORD + "\n")
    assert_one_line_error(again, "taken")
    weak = run("users", "add", "dave", "--password-stdin", input="short\n")
    assert_one_line_error(weak)


def test_sessions_list_and_revoke(store_url: str) -> None:
    """sessions list shows sids and devices (never tokens); revoke by sid or by user."""
    add_user()
    first = login(store_url, user_agent="Firefox")
    second = login(store_url, user_agent="Safari")
    listed = run("sessions", "list", "--user", "alice")
    assert listed.exit_code == 0
    assert first in listed.output and second in listed.output
    assert "Safari" in listed.output and "10.0.0.7" in listed.output
    assert "kfrt_" not in listed.output

    assert run("sessions", "revoke", "--sid", first).output.strip() == f"revoked session {first}"
    assert first not in run("sessions", "list", "--user", "alice").output
    assert_one_line_error(run("sessions", "revoke", "--sid", first), "no live session")

    everything = run("sessions", "revoke", "--user", "alice")
    assert "revoked 1 session(s) of alice" in everything.output
    assert "has no live sessions" in run("sessions", "list", "--user", "alice").output

    events = run("events", "--kind", "revoke", "--user", "alice")
    assert events.output.count("admin") == 2, "admin revocations are logged as such"


def test_sessions_revoke_needs_exactly_one_target(store_url: str) -> None:
    """--sid and --user are exclusive, and one is required."""
    assert run("sessions", "revoke").exit_code == 2
    assert run("sessions", "revoke", "--sid", "x", "--user", "y").exit_code == 2


def test_unknown_user_is_a_one_line_error(store_url: str) -> None:
    """Naming a user that does not exist says so."""
    for args in (
        ("sessions", "list", "--user", "nobody"),
        ("sessions", "revoke", "--user", "nobody"),
        ("events", "--user", "nobody"),
    ):
        assert_one_line_error(run(*args), "unknown user 'nobody'")


def test_keys_list_and_rotate(store_url: str) -> None:
    """By default there is a key per algorithm, the access tokens' (ES256) and the id
    tokens' (RS256); keys rotate publishes a scheduled key for each; keys list shows
    them all, never private parts."""
    first = run("keys", "list")
    assert first.exit_code == 0
    assert sorted((line.split()[1], line.split()[2]) for line in first.output.splitlines()[1:]) == [
        ("ES256", "signing"),
        ("RS256", "signing"),
    ]
    rotated = run("keys", "rotate")
    assert rotated.exit_code == 0
    assert rotated.output.count("new signing key") == 2
    assert "(ES256)" in rotated.output and "(RS256)" in rotated.output
    listed = run("keys", "list").output
    rows = sorted((line.split()[1], line.split()[2]) for line in listed.splitlines()[1:])
    assert rows == [
        ("ES256", "scheduled"),
        ("ES256", "signing"),
        ("RS256", "scheduled"),
        ("RS256", "signing"),
    ]
    assert '"d"' not in listed


def test_events_newest_first_and_filtered(store_url: str) -> None:
    """events lists newest first and filters by kind, user and limit."""
    add_user("alice")
    add_user("bob")
    sid = login(store_url, "alice")
    everything = run("events").output.splitlines()
    ids = [int(line.split()[0]) for line in everything[1:]]
    assert ids == sorted(ids, reverse=True)
    logins = run("events", "--kind", "login_ok").output
    assert sid in logins and "alice" in logins
    only_bob = run("events", "--user", "bob").output.splitlines()
    assert len(only_bob) == 2 and "user_created" in only_bob[1]
    assert len(run("events", "--limit", "1").output.splitlines()) == 2
    assert len(run("events", "--sid", sid).output.splitlines()) == 2


def test_migrate_and_purge(store_url: str) -> None:
    """migrate applies the schema once; purge reports how many sessions went."""
    shipped = len(load_migrations("sqlite"))
    assert f"applied {shipped} migration(s)" in run("migrate").output
    assert "is up to date" in run("migrate").output
    assert run("purge").output.strip() == "purged 0 session(s) and authorization code(s)"


@pytest.mark.parametrize(
    ("url", "needle"),
    [
        ("mysql://root@db/keyfob", "unsupported store URL scheme"),
        ("keyfob.db", "not a store URL"),
        ("sqlite:///:memory:", "needs a database file"),
    ],
)
def test_bad_store_url_is_a_one_line_error(store_url: str, url: str, needle: str) -> None:
    """A bad store URL is reported as such, exit code 2, no traceback."""
    assert_one_line_error(run("users", "list", "--store-url", url), needle)
    assert_one_line_error(run("serve", "--store-url", url, "--port", "1"), needle)


def test_postgres_without_secret_is_a_one_line_error(store_url: str) -> None:
    """PostgreSQL needs KEYFOB_SECRET: said first, before any connection."""
    url = "postgresql://keyfob:hunter2hunter2@127.0.0.1:1/keyfob"
    result = run("users", "list", "--store-url", url)
    assert_one_line_error(result, "KEYFOB_SECRET")
    assert "hunter2" not in result.output


def test_occupied_port_is_a_one_line_error(store_url: str) -> None:
    """serve checks the port before starting uvicorn."""
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        result = run("serve", "--port", str(port))
    assert_one_line_error(result, f"port {port}", "already in use")


def test_serve_hands_settings_to_uvicorn_workers(
    store_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """serve prepares the store, prints where it listens, and runs the app factory in
    uvicorn with uvloop and httptools; its flags reach the workers as KEYFOB_* variables."""
    import os

    import uvicorn

    calls: list[tuple[tuple[Any, ...], dict[str, Any]]] = []

    def fake_run(*args: Any, **kwargs: Any) -> None:
        calls.append((args, kwargs))
        settings = Settings.from_env()  # what a worker process would read
        assert settings.access_ttl == 300
        assert settings.grace == 0
        assert settings.issuer == f"http://localhost:{kwargs['port']}"

    monkeypatch.setattr(uvicorn, "run", fake_run)
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    result = run("serve", "--port", str(port), "--workers", "3", "--access-ttl", "5m",
                 "--grace", "0")  # fmt: skip
    assert result.exit_code == 0, result.output
    ((args, kwargs),) = calls
    assert args == (APP_FACTORY,)
    assert kwargs["factory"] is True
    assert kwargs["workers"] == 3
    assert (kwargs["host"], kwargs["port"]) == ("127.0.0.1", port)
    assert kwargs["loop"] == "uvloop"
    # httptools with keyfob's head limits; uvicorn's own forwarding rules off.
    assert kwargs["http"].func is LimitedHttpToolsProtocol
    assert kwargs["http"].keywords["limits"] == ConnectionLimits(32 * 1024, 10.0)
    assert kwargs["proxy_headers"] is False
    assert kwargs["limit_concurrency"] == 1000
    # keyfob's own request log (KEYFOB_ACCESS_LOG) replaces uvicorn's access log.
    assert kwargs["access_log"] is False
    assert f"listening on http://localhost:{port}" in result.output
    assert f"store: {store_url}" in result.output
    assert "signing key:" in result.output
    assert os.environ["KEYFOB_ACCESS_TTL"] == "5m"


def test_factory_exists() -> None:
    """The factory serve names is the server's module-level app factory."""
    module, _, name = APP_FACTORY.partition(":")
    imported = __import__(module, fromlist=[name])
    assert callable(getattr(imported, name))


def test_mask_url_hides_passwords() -> None:
    """Store URLs print with the password masked."""
    assert mask_url("postgresql://kf:s3cret@db:5432/kf") == "postgresql://kf:***@db:5432/kf"
    assert mask_url("sqlite:///keyfob.db") == "sqlite:///keyfob.db"
    assert mask_url("redis://:pw@cache/0") == "redis://:***@cache/0"
    assert mask_url("postgresql://kf:p/a@ss@db/kf") == "postgresql://kf:***@db/kf"
    assert mask_url("postgresql://db/kf?user=kf&password=s3cret") == (
        "postgresql://db/kf?user=kf&password=***"
    )
    assert mask_url("postgresql://kf@db/kf") == "postgresql://kf@db/kf"


def test_render_table_aligns_and_neutralises_control_characters() -> None:
    """Cells from clients (user agents) cannot inject terminal escapes."""
    table = render_table(("A", "B"), [("x", "\x1b[31mred"), ("longer", "ok")])
    lines = table.splitlines()
    assert lines[0] == "A       B"
    assert lines[1] == "x       ?[31mred"
    assert "\x1b" not in table


def test_serve_flags_show_the_settings_defaults_and_choices() -> None:
    """Each settings flag of serve shows the default and choices its Settings field has."""
    from click import Choice

    from keyfob.cli.serve import serve

    options = {p.name: p for p in serve.params}
    flagged = [s for s in SETTINGS if s.flag]
    assert "secret" not in {s.name for s in flagged}
    for s in flagged:
        option = options[s.name]
        assert option.opts == [s.flag]
        assert option.default is None, "a flag not given leaves its variable in charge"
        assert f"default {s.default_text}]" in (option.help or "")
        if s.choices:
            assert isinstance(option.type, Choice)
            assert tuple(option.type.choices) == s.choices
    access_ttl = next(s for s in SETTINGS if s.name == "access_ttl")
    assert access_ttl.default_text == "15m" and Settings().access_ttl == 900
    epilog = serve.epilog or ""
    for s in SETTINGS:
        assert f"default {s.default_text}" in epilog


def test_sessions_revoke_user_is_one_atomic_revocation(
    store_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """revoke --user makes the manager's one revoke-all call (no per-session loop): one
    revoke event for the batch, and every sid listed under the count as before."""
    add_user()
    sids = {login(store_url, user_agent=agent) for agent in ("Firefox", "Safari", "curl")}
    calls: list[str] = []
    revoke_all = SessionManager.revoke_user_sessions

    async def spy(self: SessionManager, user_id: str, **kwargs: Any) -> list[str]:
        calls.append(user_id)
        return await revoke_all(self, user_id, **kwargs)

    async def no_loop(*args: Any, **kwargs: Any) -> bool:
        raise AssertionError("revoke --user must not revoke session by session")

    monkeypatch.setattr(SessionManager, "revoke_user_sessions", spy)
    monkeypatch.setattr(SessionManager, "revoke_session", no_loop)
    result = run("sessions", "revoke", "--user", "alice")
    assert result.exit_code == 0, result.output
    assert len(calls) == 1

    first, *listed = result.output.splitlines()
    assert first == "revoked 3 session(s) of alice"
    assert all(line.startswith("  ") for line in listed)
    assert {line.strip() for line in listed} == sids
    assert "has no live sessions" in run("sessions", "list", "--user", "alice").output

    revokes = run("events", "--kind", "revoke").output.splitlines()[1:]
    assert len(revokes) == 1 and "admin sessions=3" in revokes[0]
    again = run("sessions", "revoke", "--user", "alice")
    assert again.output == "revoked 0 session(s) of alice\n"
