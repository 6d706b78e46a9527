"""``keyfob serve``: check, prepare and run the auth server in uvicorn workers.

Before uvicorn starts, serve checks the port, reads (or for SQLite creates) the
deployment secret, migrates and makes sure a signing key exists, once, in this process.
Each worker then builds its own ``Settings.from_env()``, so serve hands its flags over as
the ``KEYFOB_*`` variables they stand for: one process or many see the same settings.

What an attacker on the network meets first is set here (docs/security.md): uvicorn's
own forwarding-header handling is off (it trusts 127.0.0.1 by default; keyfob's app
trusts only ``KEYFOB_FORWARDED_ALLOW_IPS``), request heads are bounded in size and in
time (:mod:`keyfob.server.http11`), and each worker caps its concurrent connections.
"""

from __future__ import annotations

import asyncio
import contextlib
import errno
import importlib.util
import os
import shutil
import socket
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import click

from .. import __version__
from ..core.keys import KeyRecord
from ..exceptions import KeyfobError
from ..manager import SessionManager
from ..settings import Settings
from .output import store_description
from .running import CliError, load_settings, run
from .settings_flags import flag_values, settings_epilog, settings_options
from .store_access import store_for

__all__ = ["APP_FACTORY", "check_port_free", "serve"]

#: The module-level factory uvicorn calls in every worker; it reads ``Settings.from_env()``.
APP_FACTORY = "keyfob.server.app:app_from_env"

_LOOPBACK = {"127.0.0.1", "localhost", "::1"}
_WILDCARD = {"0.0.0.0", "::", ""}  # noqa: S104 - recognising the wildcard, not binding to it


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
    store = store_for(settings)
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


@click.command(epilog=settings_epilog())
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
@settings_options
def serve(host: str, port: int, workers: int, log_level: str, **flags: Any) -> None:
    """Run the keyfob auth server (uvicorn, uvloop, httptools).

    Without KEYFOB_ISSUER the issuer is the server's own URL, with 127.0.0.1 shown as
    localhost so that browsers treat the demo page at / as a secure context.
    """
    given = flag_values(flags)
    base_url = _base_url(host, port)
    if not given.get("issuer") and not os.environ.get("KEYFOB_ISSUER"):
        given["issuer"] = base_url
        if host in _WILDCARD:
            click.echo(
                f"warning: the issuer defaults to {base_url}; set KEYFOB_ISSUER to the URL "
                "clients use to reach this server",
                err=True,
            )
    settings = load_settings(given)
    try:
        import uvicorn
    except ImportError:
        raise CliError(
            "keyfob serve needs the 'server' extra: pip install 'keyfob[server]'"
        ) from None
    check_port_free(host, port)
    # The workers build their own Settings.from_env(): hand every flag over as its variable.
    for name, value in given.items():
        os.environ["KEYFOB_" + name.upper()] = value
    options: dict[str, Any] = {
        "host": host,
        "port": port,
        "loop": "uvloop" if importlib.util.find_spec("uvloop") else "auto",
        "http": _http_protocol(settings),
        # h11's own head limit, for when httptools is missing and uvicorn falls back.
        "h11_max_incomplete_event_size": settings.max_head_size,
        "limit_concurrency": settings.max_concurrency or None,
        # The app resolves the client's address from KEYFOB_FORWARDED_ALLOW_IPS only.
        "proxy_headers": False,
        "access_log": False,  # keyfob's own request log replaces uvicorn's
        "log_level": log_level,
        "log_config": _log_config(settings, log_level),
        "server_header": False,
    }
    if workers == 1:
        _serve_here(settings, base_url, options)
        return
    applied, key = run(lambda: _prepare(settings))
    _announce(settings, base_url, applied, key)
    # Several workers: their metrics meet in a directory (one process serves them alone).
    with _metrics(settings):
        uvicorn.run(APP_FACTORY, factory=True, workers=workers, **options)


def _serve_here(settings: Settings, base_url: str, options: dict[str, Any]) -> None:
    """One worker: start the app's manager and serve, in this process and event loop.

    No separate preparation pass: against a database far away each pass is a handful of
    round trips, and the worker's own start-up already migrates, loads the signing keys
    (creating the first) and reads recent revocations (docs/scaling.md, "Start-up").
    Migrations applied are logged by the store.
    """
    import uvicorn

    from ..server.app import create_app

    try:
        app = create_app(settings)
    except KeyfobError as exc:
        raise CliError(str(exc)) from None
    config = uvicorn.Config(app, **options)  # configures logging, before anything logs
    manager: SessionManager = app.state.manager

    async def start_and_serve() -> None:
        try:
            # Started here so that a store that cannot be reached is a one-line error;
            # the app's lifespan then finds it started.
            try:
                await manager.start()
            except KeyfobError as exc:
                raise CliError(str(exc)) from None
            now = manager.clock.now()
            records = manager.keys()
            key = max(
                (r for r in records if r.can_sign(now)),
                key=lambda r: r.activates_at,
                default=None,
            )
            _announce(settings, base_url, [], key)
            await uvicorn.Server(config).serve()
        finally:
            await manager.close()

    # The event loop uvicorn would run (uvloop when installed), as uvicorn.run() does.
    with asyncio.Runner(loop_factory=config.get_loop_factory()) as runner:
        runner.run(start_and_serve())


def _announce(settings: Settings, base_url: str, applied: list[str], key: KeyRecord | None) -> None:
    click.echo(f"keyfob {__version__} listening on {base_url} (issuer {settings.issuer})")
    click.echo(f"store: {store_description(settings)}")
    if applied:
        click.echo(f"applied migrations: {', '.join(applied)}")
    if key is not None:
        click.echo(f"signing key: {key.kid} ({key.alg})")
    click.echo(f"demo page: {base_url}/   JWKS: {base_url}/.well-known/jwks.json")
    sys.stdout.flush()


def _http_protocol(settings: Settings) -> Any:
    """uvicorn's ``http``: httptools with keyfob's head and time limits, else uvicorn's pick."""
    if importlib.util.find_spec("httptools") is None:
        return "auto"
    from ..server.http11 import ConnectionLimits, protocol_factory

    # uvicorn types ``http`` as a protocol class; it only ever calls it, as a factory is.
    return protocol_factory(ConnectionLimits.from_settings(settings))


def _log_config(settings: Settings, log_level: str) -> dict[str, Any]:
    """Every logger (uvicorn's too) in ``KEYFOB_LOG_FORMAT``, applied by each worker;
    keyfob's request log replaces uvicorn's access log, and KEYFOB_ACCESS_LOG turns it off."""
    from ..server.log_format import logging_config

    return logging_config(settings.log_format, log_level, request_log=settings.access_log)


@contextlib.contextmanager
def _metrics(settings: Settings) -> Iterator[None]:
    """With metrics on: a directory where each worker writes its numbers (removed when
    serve stops), and for ``KEYFOB_METRICS=HOST:PORT`` the listener, in this process,
    which outlives any worker."""
    if settings.metrics == "off":
        yield
        return
    try:
        import prometheus_client  # noqa: F401 - only to fail early and clearly
    except ImportError:
        raise CliError(
            "KEYFOB_METRICS needs prometheus-client: pip install 'keyfob[server]'"
        ) from None
    from ..server.metrics_export import MetricsExport, start_listener

    directory = settings.metrics_dir or tempfile.mkdtemp(prefix="keyfob-metrics-")
    # Numbers of an earlier run would be summed in: a given directory starts empty.
    for stale in Path(directory).glob("*.json"):
        stale.unlink(missing_ok=True)
    os.environ["KEYFOB_METRICS_DIR"] = directory
    listener = None
    try:
        if settings.metrics != "on":
            try:
                listener = start_listener(MetricsExport(None, directory), settings.metrics)
            except OSError as exc:
                raise CliError(f"cannot listen for metrics on {settings.metrics}: {exc}") from None
            click.echo(f"metrics: http://{settings.metrics}/metrics")
        else:
            click.echo("metrics: /metrics")
        yield
    finally:
        if listener is not None:
            listener.shutdown()
            listener.server_close()
        if not settings.metrics_dir:
            shutil.rmtree(directory, ignore_errors=True)
