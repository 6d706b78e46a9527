"""The ``keyfob`` command: run the auth server and administer its store.

    keyfob serve [--host 127.0.0.1] [--port 8000] [--workers 1] [settings flags]
    keyfob migrate
    keyfob users add NAME [--password-stdin] | users list
    keyfob sessions list --user NAME | sessions revoke (--sid SID | --user NAME)
    keyfob keys list | keys rotate
    keyfob events [--kind KIND] [--user NAME] [--sid SID] [--limit N]
    keyfob purge

Settings come from ``KEYFOB_*`` environment variables (spec §8); a flag overrides its
variable. ``serve`` hands its settings to the server's worker processes through the same
variables, so one process or many see exactly the same configuration.

The CLI is an edge: each command runs its own event loop with ``asyncio.run``. It shows
session ids, never tokens, and reports every expected failure as one line on stderr
with exit code 2 (no traceback).
"""

from __future__ import annotations

import asyncio
import errno
import importlib.util
import os
import re
import socket
import sys
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, TypeVar

import click

from . import __version__
from .core.keys import KeyRecord
from .core.models import EventKind, RevokeReason, User
from .exceptions import KeyfobError
from .manager import SessionManager
from .settings import Settings, load_deployment_secret
from .store import Store, open_store

__all__ = ["cli", "main"]

T = TypeVar("T")

#: The module-level factory uvicorn calls in every worker; it reads ``Settings.from_env()``.
APP_FACTORY = "keyfob.server.app:app_from_env"

#: Admin commands sign no tokens, but the manager needs an issuer to build its verifier.
_ADMIN_ISSUER = "http://localhost"

_PASSWORD_PARAM = re.compile(r"([?&]password=)[^&#]*", re.IGNORECASE)
_LOOPBACK = {"127.0.0.1", "localhost", "::1"}
_WILDCARD = {"0.0.0.0", "::", ""}  # noqa: S104 - recognising the wildcard, not binding to it


class CliError(click.ClickException):
    """An expected failure: printed as one ``Error: …`` line, exit code 2."""

    exit_code = 2


# --- settings flags -----------------------------------------------------------------------


@dataclass(frozen=True)
class _Setting:
    """One ``Settings`` field as ``serve --help`` documents it."""

    field: str
    help: str
    default: str
    #: The flag that sets it, or "" when only the environment does (e.g. the secret).
    flag: str = ""
    choices: tuple[str, ...] = ()
    is_flag: bool = False

    @property
    def env(self) -> str:
        return "KEYFOB_" + self.field.upper()


#: Every setting, in the order ``serve --help`` lists them (tests check none is missing).
SETTINGS: tuple[_Setting, ...] = (
    _Setting(
        "store_url",
        "sqlite:///path.db, postgresql://… or memory://",
        "sqlite:///keyfob.db",
        "--store-url",
    ),
    _Setting(
        "secret",
        "the deployment secret (environment only: never a flag, which "
        "other users could read in the process list)",
        "generated beside the SQLite database; required for PostgreSQL",
    ),
    _Setting("secret_file", "a file holding the deployment secret", "unset", "--secret-file"),
    _Setting("previous_secrets", "comma-separated earlier secrets, still accepted", "none"),
    _Setting("issuer", "iss of access tokens and metadata", "http://localhost:PORT", "--issuer"),
    _Setting("audience", "aud of access tokens", "the issuer", "--audience"),
    _Setting("access_ttl", "access-token lifetime (900, 15m, 7d)", "15m", "--access-ttl"),
    _Setting("idle_ttl", "session idle lifetime", "7d", "--idle-ttl"),
    _Setting("absolute_ttl", "session absolute lifetime", "30d", "--absolute-ttl"),
    _Setting("grace", "grace window for the previous refresh token (0 disables)", "10s", "--grace"),
    _Setting(
        "reuse_policy",
        "what reuse detection revokes",
        "session",
        "--reuse-policy",
        choices=("session", "user"),
    ),
    _Setting(
        "signing_alg",
        "access-token signature algorithm",
        "ES256",
        "--signing-alg",
        choices=("ES256", "EdDSA", "RS256"),
    ),
    _Setting(
        "allowed_origins",
        "comma-separated origins allowed for cookie requests",
        "the issuer's origin",
        "--allowed-origins",
    ),
    _Setting(
        "redis_url", "optional Redis for shared rate limits and revocations", "unset", "--redis-url"
    ),
    _Setting(
        "insecure_dev_cookies",
        "allow refresh cookies over plain HTTP beyond localhost (development only)",
        "off",
        "--insecure-dev-cookies",
        is_flag=True,
    ),
    _Setting(
        "cookie_mode",
        "secure-path: __Secure- cookie on /auth; host: __Host- on /",
        "secure-path",
        "--cookie-mode",
        choices=("secure-path", "host"),
    ),
    _Setting("password_profile", "argon2id cost preset", "rfc9106-low-memory"),
    _Setting("password_min_length", "minimum password length", "10"),
    _Setting("leeway", "clock-skew allowance when verifying access tokens", "30s"),
    _Setting("key_publish_delay", "how long a new signing key is published before it signs", "5m"),
    _Setting("revoked_retention", "how long revoked sessions are kept before purge", "7d"),
    _Setting(
        "revocation_resync_interval",
        "how often each process re-reads recent revocations (missed notifications)",
        "5s",
    ),
    _Setting("key_reload_interval", "how often each process reloads the signing keys", "60s"),
    _Setting("purge_interval", "how often expired sessions are purged (one instance)", "1h"),
    _Setting(
        "verified_token_cache_size",
        "how many verified access tokens each process remembers (0 disables)",
        "10000",
    ),
    _Setting("sqlite_synchronous", "full (survives power loss) or normal", "full"),
)


def _settings_epilog() -> str:
    width = max(len(s.env) for s in SETTINGS)
    lines = ["\b", "Settings (environment variable, then the flag that overrides it):"]
    for s in SETTINGS:
        flag = f" [{s.flag}]" if s.flag else ""
        lines.append(f"  {s.env:<{width}}  {s.help}; default {s.default}{flag}")
    return "\n".join(lines)


def _settings_options(command: Callable[..., Any]) -> Callable[..., Any]:
    """Add a flag for every setting that has one; each defaults to 'not given' (None)."""
    for s in reversed([s for s in SETTINGS if s.flag]):
        help_text = f"{s.help} [env {s.env}; default {s.default}]"
        if s.is_flag:
            option = click.option(s.flag, s.field, is_flag=True, default=None, help=help_text)
        elif s.choices:
            option = click.option(
                s.flag, s.field, type=click.Choice(s.choices), default=None, help=help_text
            )
        else:
            option = click.option(s.flag, s.field, default=None, help=help_text)
        command = option(command)
    return command


def _store_options(command: Callable[..., Any]) -> Callable[..., Any]:
    """``--store-url`` and ``--secret-file`` for the admin commands."""
    command = click.option(
        "--secret-file",
        "secret_file",
        default=None,
        help="File holding the deployment secret [env KEYFOB_SECRET_FILE; or KEYFOB_SECRET].",
    )(command)
    return click.option(
        "--store-url",
        "store_url",
        default=None,
        help="The store [env KEYFOB_STORE_URL; default sqlite:///keyfob.db].",
    )(command)


def _flag_values(values: dict[str, Any]) -> dict[str, str]:
    """The settings given as flags, as the text their environment variable would hold."""
    out: dict[str, str] = {}
    for s in SETTINGS:
        value = values.get(s.field)
        if value is None:
            continue
        out[s.field] = ("true" if value else "false") if s.is_flag else str(value)
    return out


def _load_settings(overrides: dict[str, Any]) -> Settings:
    try:
        return Settings.from_env(overrides)
    except KeyfobError as exc:
        raise CliError(str(exc)) from None


def _admin_settings(store_url: str | None, secret_file: str | None) -> Settings:
    overrides: dict[str, Any] = {}
    if store_url is not None:
        overrides["store_url"] = store_url
    if secret_file is not None:
        overrides["secret_file"] = secret_file
    if not os.environ.get("KEYFOB_ISSUER"):
        overrides["issuer"] = _ADMIN_ISSUER
    return _load_settings(overrides)


# --- running async work -------------------------------------------------------------------


def _run(work: Callable[[], Awaitable[T]]) -> T:
    """Run one command's async body; keyfob's own errors become a one-line exit 2."""

    async def body() -> T:
        return await work()

    try:
        return asyncio.run(body())
    except KeyfobError as exc:
        raise CliError(str(exc)) from None


def _store_for(settings: Settings) -> Store:
    """The (unopened) store; a missing secret for PostgreSQL is reported before anything
    else, and a bad URL as a bad URL (not as a missing secret)."""
    if settings.store_url.partition("://")[0] in {"postgresql", "postgres"}:
        # Every instance must share one secret, so none is generated (spec §8).
        load_deployment_secret(settings)
    return open_store(settings.store_url, settings=settings)


@asynccontextmanager
async def _open_manager(settings: Settings) -> AsyncIterator[SessionManager]:
    async with SessionManager(settings, _store_for(settings)) as manager:
        yield manager


async def _user_named(manager: SessionManager, name: str) -> User:
    user = await manager.store.get_user_by_name(name.strip())
    if user is None:
        raise CliError(f"unknown user {name!r}")
    return user


# --- output -------------------------------------------------------------------------------


def _when(timestamp: float | None) -> str:
    if timestamp is None:
        return "-"
    return datetime.fromtimestamp(timestamp, UTC).strftime("%Y-%m-%d %H:%M:%SZ")


def _cell(value: object, limit: int = 60) -> str:
    """Printable text: user agents and usernames come from clients, so no control codes."""
    text = "".join(c if c.isprintable() else "?" for c in str(value)) or "-"
    return text if len(text) <= limit else text[: limit - 1] + "…"


def render_table(headers: Sequence[str], rows: Iterable[Sequence[object]]) -> str:
    """A plain-text table with aligned columns (the last one is not padded)."""
    body = [[_cell(v) for v in row] for row in rows]
    widths = [len(h) for h in headers]
    for row in body:
        for i, value in enumerate(row):
            widths[i] = max(widths[i], len(value))
    lines = []
    for row in [list(headers), *body]:
        padded = [v.ljust(widths[i]) for i, v in enumerate(row[:-1])]
        lines.append("  ".join([*padded, row[-1]]).rstrip())
    return "\n".join(lines)


def _echo_table(headers: Sequence[str], rows: Sequence[Sequence[object]], empty: str) -> None:
    if rows:
        click.echo(render_table(headers, rows))
    else:
        click.echo(empty)


def mask_url(url: str) -> str:
    """The URL with any password (``user:…@``, ``?password=…``) replaced by ``***``.

    Deliberately textual rather than ``urllib.parse``: a URL that does not parse (a
    password with an unescaped ``/`` or ``@``) must still not print its password.
    """
    scheme, sep, rest = url.partition("://")
    if not sep:
        return url
    userinfo, at, hostpart = rest.rpartition("@")
    if at and ":" in userinfo:
        rest = f"{userinfo.split(':', 1)[0]}:***@{hostpart}"
    rest = _PASSWORD_PARAM.sub(r"\1***", rest)
    return f"{scheme}://{rest}"


def _store_description(settings: Settings) -> str:
    url = mask_url(settings.store_url)
    if settings.store_url.startswith("sqlite:///"):
        path = Path(settings.store_url.removeprefix("sqlite:///")).resolve()
        return f"{url} ({path})"
    return url


# --- the command group --------------------------------------------------------------------


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="keyfob")
def cli() -> None:
    """keyfob: rotating refresh-token sessions and an auth server.

    Settings come from KEYFOB_* environment variables; see `keyfob serve --help`.
    """


def main() -> None:
    """The ``keyfob`` console script."""
    cli(prog_name="keyfob")


# --- serve --------------------------------------------------------------------------------


def _base_url(host: str, port: int) -> str:
    shown = "localhost" if host in _LOOPBACK else host
    if ":" in shown:
        shown = f"[{shown}]"
    return f"http://{shown}:{port}"


def check_port_free(host: str, port: int) -> None:
    """Fail with a clear message when ``host:port`` cannot be bound (as uvicorn would)."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    with socket.socket(family, socket.SOCK_STREAM) as sock:
        # Like uvicorn: a socket in TIME_WAIT does not block, a listening one does.
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind((host, port))
        except socket.gaierror as exc:
            raise CliError(f"cannot listen on {host!r}: {exc.strerror}") from None
        except OSError as exc:
            if exc.errno == errno.EADDRINUSE:
                raise CliError(
                    f"port {port} on {host} is already in use; stop the other server or "
                    "choose another --port"
                ) from None
            raise CliError(f"cannot listen on {host}:{port}: {exc.strerror}") from None


async def _prepare(settings: Settings) -> tuple[list[str], KeyRecord | None]:
    """Migrate and make sure a signing key exists, once, before any worker starts."""
    store = _store_for(settings)
    # Reads (or for SQLite, creates) the deployment secret: a missing one fails here,
    # before anything is opened.
    manager = SessionManager(settings, store)
    try:
        applied = await store.migrate()
        await manager.start()
        records = await store.load_keys()
    finally:
        await manager.close()
    now = manager.clock.now()
    signing = [r for r in records if r.can_sign(now)]
    return applied, max(signing, key=lambda r: r.activates_at, default=None)


@cli.command(epilog=_settings_epilog())
@click.option("--host", default="127.0.0.1", show_default=True, help="Interface to listen on.")
@click.option(
    "--port", default=8000, show_default=True, type=click.IntRange(1, 65535), help="TCP port."
)
@click.option(
    "--workers",
    default=1,
    show_default=True,
    type=click.IntRange(1, 64),
    help="Worker processes (they share the store).",
)
@click.option(
    "--log-level",
    default="info",
    show_default=True,
    type=click.Choice(["critical", "error", "warning", "info", "debug"]),
)
@_settings_options
def serve(host: str, port: int, workers: int, log_level: str, **flags: Any) -> None:
    """Run the keyfob auth server (uvicorn, uvloop, httptools).

    Without KEYFOB_ISSUER the issuer is the server's own URL, with 127.0.0.1 shown as
    localhost so that browsers treat the demo page at / as a secure context.
    """
    given = _flag_values(flags)
    base_url = _base_url(host, port)
    if not given.get("issuer") and not os.environ.get("KEYFOB_ISSUER"):
        given["issuer"] = base_url
        if host in _WILDCARD:
            click.echo(
                f"warning: the issuer defaults to {base_url}; set KEYFOB_ISSUER to the URL "
                "clients use to reach this server",
                err=True,
            )
    settings = _load_settings(given)
    try:
        import uvicorn
    except ImportError:
        raise CliError(
            "keyfob serve needs the 'server' extra: pip install 'keyfob[server]'"
        ) from None
    check_port_free(host, port)
    applied, key = _run(lambda: _prepare(settings))

    # The workers build their own Settings.from_env(): hand every flag over as its variable.
    for name, value in given.items():
        os.environ["KEYFOB_" + name.upper()] = value

    click.echo(f"keyfob {__version__} listening on {base_url} (issuer {settings.issuer})")
    click.echo(f"store: {_store_description(settings)}")
    if applied:
        click.echo(f"applied migrations: {', '.join(applied)}")
    if key is not None:
        click.echo(f"signing key: {key.kid} ({key.alg})")
    click.echo(f"demo page: {base_url}/   JWKS: {base_url}/.well-known/jwks.json")
    sys.stdout.flush()
    uvicorn.run(
        APP_FACTORY,
        factory=True,
        host=host,
        port=port,
        workers=workers,
        loop="uvloop" if importlib.util.find_spec("uvloop") else "auto",
        http="httptools" if importlib.util.find_spec("httptools") else "auto",
        log_level=log_level,
        server_header=False,
    )


# --- migrate ------------------------------------------------------------------------------


@cli.command()
@_store_options
def migrate(store_url: str | None, secret_file: str | None) -> None:
    """Create or upgrade the store's schema (serve does this too)."""
    settings = _admin_settings(store_url, secret_file)

    async def work() -> list[str]:
        store = _store_for(settings)
        try:
            return await store.migrate()
        finally:
            await store.close()

    applied = _run(work)
    where = mask_url(settings.store_url)
    if applied:
        click.echo(f"applied {len(applied)} migration(s) to {where}: {', '.join(applied)}")
    else:
        click.echo(f"{where} is up to date")


# --- users --------------------------------------------------------------------------------


@cli.group()
def users() -> None:
    """Create and list accounts."""


@users.command("add")
@click.argument("username")
@click.option(
    "--password-stdin",
    is_flag=True,
    help="Read the password from the first line of standard input instead of a prompt.",
)
@_store_options
def users_add(
    username: str, password_stdin: bool, store_url: str | None, secret_file: str | None
) -> None:
    """Create the account USERNAME."""
    settings = _admin_settings(store_url, secret_file)
    if password_stdin:
        password = sys.stdin.readline().rstrip("\r\n")
        if not password:
            raise CliError("no password on standard input")
    else:
        password = click.prompt(
            "Password", hide_input=True, confirmation_prompt="Repeat the password"
        )

    async def work() -> User:
        async with _open_manager(settings) as manager:
            return await manager.register(username, password)

    user = _run(work)
    click.echo(f"created user {_cell(user.username)} (id {user.id})")


@users.command("list")
@click.option("--limit", default=100, show_default=True, type=click.IntRange(1, 10_000))
@click.option("--offset", default=0, type=click.IntRange(0))
@_store_options
def users_list(limit: int, offset: int, store_url: str | None, secret_file: str | None) -> None:
    """List accounts, oldest first, with their number of live sessions."""
    settings = _admin_settings(store_url, secret_file)

    async def work() -> list[tuple[User, int]]:
        async with _open_manager(settings) as manager:
            found = await manager.store.list_users(limit=limit, offset=offset)
            return [(u, len(await manager.list_sessions(u.id))) for u in found]

    rows = [(u.username, u.id, _when(u.created_at), live) for u, live in _run(work)]
    _echo_table(("USERNAME", "ID", "CREATED", "LIVE SESSIONS"), rows, "no users")


# --- sessions -----------------------------------------------------------------------------


@cli.group()
def sessions() -> None:
    """List and revoke sessions (one session = one login on one device)."""


@sessions.command("list")
@click.option("--user", "username", required=True, help="Whose live sessions to list.")
@_store_options
def sessions_list(username: str, store_url: str | None, secret_file: str | None) -> None:
    """List a user's live sessions, newest first."""
    settings = _admin_settings(store_url, secret_file)

    async def work() -> list[tuple[object, ...]]:
        async with _open_manager(settings) as manager:
            user = await _user_named(manager, username)
            found = await manager.list_sessions(user.id)
        return [
            (
                s.sid,
                s.client_id,
                _when(s.created_at),
                _when(s.last_used_at),
                _when(s.expires_at()),
                s.counter,
                s.device.ip,
                _cell(s.device.user_agent, 40),
            )
            for s in found
        ]

    headers = ("SID", "CLIENT", "CREATED", "LAST USED", "EXPIRES", "ROTATIONS", "IP", "DEVICE")
    _echo_table(headers, _run(work), f"{username} has no live sessions")


@sessions.command("revoke")
@click.option("--sid", default=None, help="Revoke this one session.")
@click.option("--user", "username", default=None, help="Revoke every session of this user.")
@_store_options
def sessions_revoke(
    sid: str | None, username: str | None, store_url: str | None, secret_file: str | None
) -> None:
    """Revoke one session (--sid) or all of a user's sessions (--user).

    Its refresh token stops working at once; access tokens already issued are refused by
    services that check revocations, and expire within the access-token lifetime anyway.
    """
    if (sid is None) == (username is None):
        raise click.UsageError("give exactly one of --sid or --user")
    settings = _admin_settings(store_url, secret_file)

    async def work() -> list[str]:
        async with _open_manager(settings) as manager:
            if sid is not None:
                done = await manager.revoke_session(sid, reason=RevokeReason.ADMIN)
                if not done:
                    raise CliError(f"no live session with sid {sid!r}")
                return [sid]
            assert username is not None
            user = await _user_named(manager, username)
            revoked = []
            for session in await manager.list_sessions(user.id):
                if await manager.revoke_session(
                    session.sid, reason=RevokeReason.ADMIN, user_id=user.id
                ):
                    revoked.append(session.sid)
            return revoked

    revoked = _run(work)
    if sid is not None:
        click.echo(f"revoked session {sid}")
    else:
        click.echo(f"revoked {len(revoked)} session(s) of {username}")
        for each in revoked:
            click.echo(f"  {each}")


# --- keys ---------------------------------------------------------------------------------


def _key_state(record: KeyRecord, now: float) -> str:
    if not record.is_published(now):
        return "expired"
    if record.can_sign(now):
        return "signing"
    if record.activates_at > now:
        return "scheduled"
    return "retired"


@cli.group()
def keys() -> None:
    """List and rotate the access-token signing keys."""


@keys.command("list")
@_store_options
def keys_list(store_url: str | None, secret_file: str | None) -> None:
    """List the signing keys, newest first. Only public details are shown."""
    settings = _admin_settings(store_url, secret_file)

    async def work() -> tuple[list[KeyRecord], float]:
        async with _open_manager(settings) as manager:
            return await manager.store.load_keys(), manager.clock.now()

    records, now = _run(work)
    records.sort(key=lambda r: (r.activates_at, r.created_at), reverse=True)
    rows = [
        (
            r.kid,
            r.alg,
            _key_state(r, now),
            _when(r.created_at),
            _when(r.activates_at),
            _when(r.retired_at),
            _when(r.expires_at),
        )
        for r in records
    ]
    headers = ("KID", "ALG", "STATE", "CREATED", "SIGNS FROM", "RETIRED", "UNPUBLISHED")
    _echo_table(headers, rows, "no signing keys")


@keys.command("rotate")
@_store_options
def keys_rotate(store_url: str | None, secret_file: str | None) -> None:
    """Publish a new signing key without downtime.

    The new key is published in the JWKS at once and signs after KEYFOB_KEY_PUBLISH_DELAY;
    the current key then stops signing and stays published until its last token expired.
    """
    settings = _admin_settings(store_url, secret_file)

    async def work() -> KeyRecord:
        async with _open_manager(settings) as manager:
            return await manager.rotate_signing_key()

    record = _run(work)
    click.echo(f"new signing key {record.kid} ({record.alg})")
    click.echo(f"  published now, signs from {_when(record.activates_at)}")


# --- events -------------------------------------------------------------------------------


@cli.command()
@click.option("--kind", type=click.Choice([k.value for k in EventKind]), default=None)
@click.option("--user", "username", default=None, help="Only this user's events.")
@click.option("--sid", default=None, help="Only this session's events.")
@click.option("--limit", default=50, show_default=True, type=click.IntRange(1, 10_000))
@_store_options
def events(
    kind: str | None,
    username: str | None,
    sid: str | None,
    limit: int,
    store_url: str | None,
    secret_file: str | None,
) -> None:
    """Show the security-event log, newest first."""
    settings = _admin_settings(store_url, secret_file)

    async def work() -> list[tuple[object, ...]]:
        async with _open_manager(settings) as manager:
            user_id = None
            if username is not None:
                user_id = (await _user_named(manager, username)).id
            found = await manager.events(
                limit=limit,
                kind=EventKind(kind) if kind is not None else None,
                user_id=user_id,
                sid=sid,
            )
            names: dict[str, str] = {}
            for uid in {e.user_id for e in found if e.user_id}:
                user = await manager.store.get_user(uid)
                names[uid] = user.username if user is not None else uid
        return [
            (
                e.id if e.id is not None else "-",
                _when(e.at),
                e.kind.value,
                names.get(e.user_id, "-") if e.user_id else "-",
                e.sid or "-",
                e.ip or "-",
                e.detail,
            )
            for e in found
        ]

    headers = ("ID", "AT", "KIND", "USER", "SID", "IP", "DETAIL")
    _echo_table(headers, _run(work), "no events")


# --- purge --------------------------------------------------------------------------------


@cli.command()
@_store_options
def purge(store_url: str | None, secret_file: str | None) -> None:
    """Delete expired sessions and those revoked longer ago than KEYFOB_REVOKED_RETENTION."""
    settings = _admin_settings(store_url, secret_file)

    async def work() -> int:
        async with _open_manager(settings) as manager:
            return await manager.purge()

    click.echo(f"purged {_run(work)} session(s)")


if __name__ == "__main__":  # pragma: no cover
    main()
