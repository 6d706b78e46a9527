"""``keyfob keys list | rotate``: the access-token and id-token signing keys, rotated
without downtime."""

from __future__ import annotations

import click

from ..core.keys import KeyRecord
from .output import echo_table, when
from .running import run
from .store_access import admin_settings, open_manager, store_options

__all__ = ["keys"]


def _key_state(record: KeyRecord, now: float) -> str:
    if not record.is_published(now):
        return "expired"
    if record.can_sign(now):
        return "signing"
    if record.activates_at > now:
        return "scheduled"
    return "retired"


@click.group()
def keys() -> None:
    """List and rotate the access-token and id-token signing keys."""


@keys.command("list")
@store_options
def keys_list(store_url: str | None, secret_file: str | None) -> None:
    """List the signing keys, newest first. Only public details are shown."""
    settings = admin_settings(store_url, secret_file)

    async def work() -> tuple[list[KeyRecord], float]:
        async with open_manager(settings) as manager:
            return await manager.store.load_keys(), manager.clock.now()

    records, now = run(work)
    records.sort(key=lambda r: (r.activates_at, r.created_at), reverse=True)
    rows = [
        (
            r.kid,
            r.alg,
            _key_state(r, now),
            when(r.created_at),
            when(r.activates_at),
            when(r.retired_at),
            when(r.expires_at),
        )
        for r in records
    ]
    headers = ("KID", "ALG", "STATE", "CREATED", "SIGNS FROM", "RETIRED", "UNPUBLISHED")
    echo_table(headers, rows, "no signing keys")


@keys.command("rotate")
@store_options
def keys_rotate(store_url: str | None, secret_file: str | None) -> None:
    """Publish new signing keys without downtime.

    One new key per algorithm in use: the access tokens' (KEYFOB_SIGNING_ALG) and, when it
    differs, the id tokens' (KEYFOB_ID_TOKEN_ALG). Each is published in the JWKS at once
    and signs after KEYFOB_KEY_PUBLISH_DELAY; the key it replaces then stops signing and
    stays published until its last token expired.
    """
    settings = admin_settings(store_url, secret_file)

    async def work() -> list[KeyRecord]:
        async with open_manager(settings) as manager:
            return await manager.rotate_signing_keys()

    for record in run(work):
        click.echo(f"new signing key {record.kid} ({record.alg})")
        click.echo(f"  published now, signs from {when(record.activates_at)}")
