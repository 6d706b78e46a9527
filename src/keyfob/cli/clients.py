"""``keyfob clients add | list | show | remove | rotate-secret``: the OAuth client registry.

A client secret is printed once, when it is made (``add``, ``rotate-secret``); the store
keeps only its hash, so it cannot be shown again. ``show`` prints the registration,
never a secret or its hash.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import cast

import click

from ..core.clients import AUTH_METHODS, GRANT_TYPES, AuthMethod, Client
from ..core.id_tokens import with_oidc_scopes
from ..settings import Settings
from .output import cell, echo_table, when
from .running import CliError, run
from .store_access import admin_settings, open_manager, store_options

__all__ = ["clients"]


@click.group()
def clients() -> None:
    """Register and administer OAuth clients."""


@clients.command("add")
@click.argument("name")
@click.option("--client-id", default=None, help="The client id [default: a random one].")
@click.option(
    "--auth-method",
    type=click.Choice(AUTH_METHODS),
    default="client_secret_basic",
    show_default=True,
    help="How the client authenticates at the token endpoint; none: a public client.",
)
@click.option(
    "--redirect-uri",
    "redirect_uris",
    multiple=True,
    help="A redirect URI, matched exactly (http://127.0.0.1/… matches any port). Repeatable.",
)
@click.option(
    "--grant-type",
    "grant_types",
    multiple=True,
    type=click.Choice(GRANT_TYPES),
    help="A grant the client may use. Repeatable [default: authorization_code and "
    "refresh_token with a redirect URI, else refresh_token].",
)
@click.option("--scope", "scopes", multiple=True, help="A scope the client may ask for.")
@click.option(
    "--jwks-file",
    type=click.Path(exists=True, dir_okay=False, path_type=Path),
    default=None,
    help="The client's public JWK Set (private_key_jwt).",
)
@click.option(
    "--post-logout-redirect-uri",
    "post_logout_redirect_uris",
    multiple=True,
    help="Where RP-initiated logout may send the browser back to, matched like a "
    "redirect URI. Repeatable.",
)
@click.option("--no-pkce", is_flag=True, help="Do not require PKCE (confidential clients only).")
@click.option("--first-party", is_flag=True, help="Trusted: the consent page may be skipped.")
@store_options
def clients_add(
    name: str,
    client_id: str | None,
    auth_method: str,
    redirect_uris: tuple[str, ...],
    grant_types: tuple[str, ...],
    scopes: tuple[str, ...],
    jwks_file: Path | None,
    post_logout_redirect_uris: tuple[str, ...],
    no_pkce: bool,
    first_party: bool,
    store_url: str | None,
    secret_file: str | None,
) -> None:
    """Register the client NAME; print its id and, once, its secret."""
    settings = admin_settings(store_url, secret_file)
    jwks = _read_jwks(jwks_file) if jwks_file is not None else None
    if not grant_types:
        grant_types = (
            ("authorization_code", "refresh_token") if redirect_uris else ("refresh_token",)
        )
    scope_tokens = [t for s in scopes for t in s.split()]

    async def work() -> tuple[Client, str | None]:
        async with open_manager(settings) as manager:
            return await manager.clients.register(
                name=name,
                client_id=client_id,
                auth_method=cast(AuthMethod, auth_method),  # a click.Choice of AUTH_METHODS
                redirect_uris=redirect_uris,
                grant_types=grant_types,
                scopes=scope_tokens,
                jwks=jwks,
                require_pkce=not no_pkce,
                first_party=first_party,
                post_logout_redirect_uris=post_logout_redirect_uris,
                # KEYFOB_SCOPES lists the deployment's scopes; OpenID Connect's come too.
                allowed_scopes=with_oidc_scopes(settings.scopes) if settings.scopes else (),
            )

    client, secret = run(work)
    click.echo(f"client_id: {client.client_id}")
    if secret is not None:
        click.echo(f"client_secret: {secret}")
        click.echo("The secret is shown only now: keyfob keeps only its hash.", err=True)


@clients.command("list")
@store_options
def clients_list(store_url: str | None, secret_file: str | None) -> None:
    """List the registered clients, oldest first."""
    settings = admin_settings(store_url, secret_file)

    async def work() -> list[Client]:
        async with open_manager(settings) as manager:
            return await manager.clients.list()

    rows = [
        (
            c.client_id,
            c.name,
            c.client_type,
            c.auth_method,
            " ".join(c.grant_types),
            when(c.created_at),
        )
        for c in run(work)
    ]
    echo_table(
        ("CLIENT ID", "NAME", "TYPE", "AUTH METHOD", "GRANTS", "CREATED"), rows, "no clients"
    )


@clients.command("show")
@click.argument("client_id")
@store_options
def clients_show(client_id: str, store_url: str | None, secret_file: str | None) -> None:
    """Show one client's registration (never its secret)."""
    settings = admin_settings(store_url, secret_file)
    client = run(lambda: _get(settings, client_id))
    lines = [
        ("client_id", client.client_id),
        ("name", client.name),
        ("type", client.client_type),
        ("auth_method", client.auth_method),
        ("grant_types", " ".join(client.grant_types) or "-"),
        ("scopes", " ".join(client.scopes) or "-"),
        ("require_pkce", "yes" if client.require_pkce else "no"),
        ("first_party", "yes" if client.first_party else "no"),
        ("created", when(client.created_at)),
    ]
    lines += [("redirect_uri", uri) for uri in client.redirect_uris]
    lines += [("post_logout_redirect_uri", uri) for uri in client.post_logout_redirect_uris]
    if client.jwks is not None:
        lines += [("jwk", kid) for kid in _kids(client.jwks)]
    for key, value in lines:
        click.echo(f"{key}: {cell(value, limit=2048)}")


@clients.command("remove")
@click.argument("client_id")
@store_options
def clients_remove(client_id: str, store_url: str | None, secret_file: str | None) -> None:
    """Remove a client: its sessions can no longer refresh."""
    settings = admin_settings(store_url, secret_file)

    async def work() -> bool:
        async with open_manager(settings) as manager:
            return await manager.clients.remove(client_id)

    if not run(work):
        raise CliError(f"unknown client {client_id!r}")
    click.echo(f"removed client {cell(client_id)}")


@clients.command("rotate-secret")
@click.argument("client_id")
@store_options
def clients_rotate_secret(client_id: str, store_url: str | None, secret_file: str | None) -> None:
    """Give a client a new secret (printed once); the old one stops working at once."""
    settings = admin_settings(store_url, secret_file)

    async def work() -> str:
        async with open_manager(settings) as manager:
            return await manager.clients.rotate_secret(client_id)

    secret = run(work)
    click.echo(f"client_secret: {secret}")
    click.echo("The secret is shown only now: keyfob keeps only its hash.", err=True)


async def _get(settings: Settings, client_id: str) -> Client:
    async with open_manager(settings) as manager:
        client = await manager.clients.get(client_id)
    if client is None:
        raise CliError(f"unknown client {client_id!r}")
    return client


def _read_jwks(path: Path) -> str:
    """The JWK Set file as compact JSON text; its keys are checked at registration."""
    try:
        document = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, ValueError) as exc:
        raise CliError(f"cannot read the JWK Set {path}: {exc}") from None
    return json.dumps(document, separators=(",", ":"), sort_keys=True)


def _kids(jwks: str) -> list[str]:
    keys = json.loads(jwks).get("keys", [])
    return [str(k.get("kid", "(no kid)")) for k in keys if isinstance(k, dict)]
