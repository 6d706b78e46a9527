"""``keyfob sessions list | revoke``: a user's live sessions; revoke one or all."""

from __future__ import annotations

import click

from ..core.models import RevokeReason
from .output import cell, echo_table, when
from .running import CliError, run
from .store_access import admin_settings, open_manager, store_options, user_named

__all__ = ["sessions"]


@click.group()
def sessions() -> None:
    """List and revoke sessions (one session = one login on one device)."""


@sessions.command("list")
@click.option("--user", "username", required=True, help="Whose live sessions to list.")
@store_options
def sessions_list(username: str, store_url: str | None, secret_file: str | None) -> None:
    """List a user's live sessions, newest first."""
    settings = admin_settings(store_url, secret_file)

    async def work() -> list[tuple[object, ...]]:
        async with open_manager(settings) as manager:
            user = await user_named(manager, username)
            found = await manager.list_sessions(user.id)
        return [
            (
                s.sid,
                s.client_id,
                when(s.created_at),
                when(s.last_used_at),
                when(s.expires_at()),
                s.counter,
                s.device.ip,
                cell(s.device.user_agent, 40),
            )
            for s in found
        ]

    headers = ("SID", "CLIENT", "CREATED", "LAST USED", "EXPIRES", "ROTATIONS", "IP", "DEVICE")
    echo_table(headers, run(work), f"{username} has no live sessions")


@sessions.command("revoke")
@click.option("--sid", default=None, help="Revoke this one session.")
@click.option("--user", "username", default=None, help="Revoke every session of this user.")
@store_options
def sessions_revoke(
    sid: str | None, username: str | None, store_url: str | None, secret_file: str | None
) -> None:
    """Revoke one session (--sid) or all of a user's sessions (--user).

    Its refresh token stops working at once; access tokens already issued are refused by
    services that check revocations, and expire within the access-token lifetime anyway.
    """
    if (sid is None) == (username is None):
        raise click.UsageError("give exactly one of --sid or --user")
    settings = admin_settings(store_url, secret_file)

    async def revoke_one(sid: str) -> None:
        async with open_manager(settings) as manager:
            if not await manager.revoke_session(sid, reason=RevokeReason.ADMIN):
                raise CliError(f"no live session with sid {sid!r}")

    async def revoke_all(username: str) -> list[str]:
        async with open_manager(settings) as manager:
            user = await user_named(manager, username)
            # One atomic statement in the store, not a list-then-revoke loop: no login
            # slips between a listing and the revocations. Logged as one revoke event.
            return await manager.revoke_user_sessions(user.id, reason=RevokeReason.ADMIN)

    if sid is not None:
        run(lambda: revoke_one(sid))
        click.echo(f"revoked session {sid}")
    elif username is not None:
        revoked = run(lambda: revoke_all(username))
        click.echo(f"revoked {len(revoked)} session(s) of {username}")
        for each in revoked:
            click.echo(f"  {each}")
