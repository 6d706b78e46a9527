"""The ``keyfob`` command: run the auth server and administer its store.

    keyfob serve [--host 127.0.0.1] [--port 8000] [--workers 1] [settings flags]
    keyfob migrate
    keyfob users add NAME [--password-stdin] | users list
    keyfob sessions list --user NAME | sessions revoke (--sid SID | --user NAME)
    keyfob keys list | keys rotate
    keyfob clients add NAME [...] | clients list | show ID | remove ID | rotate-secret ID
    keyfob events [--kind KIND] [--user NAME] [--sid SID] [--limit N]
    keyfob webhooks add URL [--event TYPE]... | list | test ID | deliveries | remove ID
    keyfob purge

Settings come from ``KEYFOB_*`` environment variables (spec §8); a flag overrides its
variable. ``serve`` hands its settings to the server's worker processes through the same
variables, so one process or many see exactly the same configuration.

The CLI is an edge: each command runs its own event loop with ``asyncio.run``. It shows
session ids, never tokens, and reports every expected failure as one line on stderr
with exit code 2 (no traceback).

    serve.py           keyfob serve
    settings_flags.py  serve's settings flags and help, from keyfob.settings.SETTINGS
    maintenance.py     keyfob migrate, keyfob purge
    users.py, sessions.py, keys.py, events.py, clients.py   the admin command groups
    webhooks.py        keyfob webhooks: endpoints for security events, the delivery log
    store_access.py    how admin commands open the store and the manager
    running.py         one event loop per command; expected failures as one line
    output.py          tables, times, masked store URLs
"""

from __future__ import annotations

import click

from .. import __version__
from .clients import clients
from .events import events
from .keys import keys
from .maintenance import migrate, purge
from .serve import serve
from .sessions import sessions
from .users import users
from .webhooks import webhooks

__all__ = ["cli", "main"]


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="keyfob")
def cli() -> None:
    """keyfob: rotating refresh-token sessions and an auth server.

    Settings come from KEYFOB_* environment variables; see `keyfob serve --help`.
    """


for _command in (serve, migrate, users, sessions, keys, clients, events, webhooks, purge):
    cli.add_command(_command)


def main() -> None:
    """The ``keyfob`` console script."""
    cli(prog_name="keyfob")
