"""``keyfob users add | list``: create and list accounts."""

from __future__ import annotations

import sys

import click

from ..core.models import User
from .output import cell, echo_table, when
from .running import CliError, run
from .store_access import admin_settings, open_manager, store_options

__all__ = ["users"]


@click.group()
def users() -> None:
    """Create and list accounts."""


@users.command("add")
@click.argument("username")
@click.option(
    "--password-stdin",
    is_flag=True,
    help="Read the password from the first line of standard input instead of a prompt.",
)
@store_options
def users_add(
    username: str, password_stdin: bool, store_url: str | None, secret_file: str | None
) -> None:
    """Create the account USERNAME."""
    settings = admin_settings(store_url, secret_file)
    if password_stdin:
        password = sys.stdin.readline().rstrip("\r\n")
        if not password:
            raise CliError("no password on standard input")
    else:
        password = click.prompt(
            "Password", hide_input=True, confirmation_prompt="Repeat the password"
        )

    async def work() -> User:
        async with open_manager(settings) as manager:
            return await manager.register(username, password)

    user = run(work)
    click.echo(f"created user {cell(user.username)} (id {user.id})")


@users.command("list")
@click.option("--limit", default=100, show_default=True, type=click.IntRange(1, 10_000))
@click.option("--offset", default=0, type=click.IntRange(0))
@store_options
def users_list(limit: int, offset: int, store_url: str | None, secret_file: str | None) -> None:
    """List accounts, oldest first, with their number of live sessions."""
    settings = admin_settings(store_url, secret_file)

    async def work() -> list[tuple[User, int]]:
        async with open_manager(settings) as manager:
            found = await manager.store.list_users(limit=limit, offset=offset)
            return [(u, len(await manager.list_sessions(u.id))) for u in found]

    rows = [(u.username, u.id, when(u.created_at), live) for u, live in run(work)]
    echo_table(("USERNAME", "ID", "CREATED", "LIVE SESSIONS"), rows, "no users")
