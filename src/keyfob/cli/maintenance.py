"""``keyfob migrate`` and ``keyfob purge``: the store's schema and its housekeeping."""

from __future__ import annotations

import click

from .output import mask_url
from .running import run
from .store_access import admin_settings, open_manager, store_for, store_options

__all__ = ["migrate", "purge"]


@click.command()
@store_options
def migrate(store_url: str | None, secret_file: str | None) -> None:
    """Create or upgrade the store's schema (serve does this too)."""
    settings = admin_settings(store_url, secret_file)

    async def work() -> list[str]:
        store = store_for(settings)
        try:
            return await store.migrate()
        finally:
            await store.close()

    applied = run(work)
    where = mask_url(settings.store_url)
    if applied:
        click.echo(f"applied {len(applied)} migration(s) to {where}: {', '.join(applied)}")
    else:
        click.echo(f"{where} is up to date")


@click.command()
@store_options
def purge(store_url: str | None, secret_file: str | None) -> None:
    """Delete expired sessions, those revoked longer ago than KEYFOB_REVOKED_RETENTION,
    and authorization codes expired more than a day ago."""
    settings = admin_settings(store_url, secret_file)

    async def work() -> int:
        async with open_manager(settings) as manager:
            return await manager.purge()

    click.echo(f"purged {run(work)} session(s) and authorization code(s)")
