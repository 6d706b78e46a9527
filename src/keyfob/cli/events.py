"""``keyfob events``: the security-event log, newest first."""

from __future__ import annotations

import click

from ..core.models import EventKind
from .output import echo_table, when
from .running import run
from .store_access import admin_settings, open_manager, store_options, user_named

__all__ = ["events"]


@click.command()
@click.option("--kind", type=click.Choice([k.value for k in EventKind]), default=None)
@click.option("--user", "username", default=None, help="Only this user's events.")
@click.option("--sid", default=None, help="Only this session's events.")
@click.option("--limit", default=50, show_default=True, type=click.IntRange(1, 10_000))
@store_options
def events(
    kind: str | None,
    username: str | None,
    sid: str | None,
    limit: int,
    store_url: str | None,
    secret_file: str | None,
) -> None:
    """Show the security-event log, newest first."""
    settings = admin_settings(store_url, secret_file)

    async def work() -> list[tuple[object, ...]]:
        async with open_manager(settings) as manager:
            user_id = None
            if username is not None:
                user_id = (await user_named(manager, username)).id
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
                when(e.at),
                e.kind.value,
                names.get(e.user_id, "-") if e.user_id else "-",
                e.sid or "-",
                e.ip or "-",
                e.detail,
            )
            for e in found
        ]

    headers = ("ID", "AT", "KIND", "USER", "SID", "IP", "DETAIL")
    echo_table(headers, run(work), "no events")
