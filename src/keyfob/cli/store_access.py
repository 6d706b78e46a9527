"""How the admin commands reach the store: its flags, their settings, an open manager."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from typing import Any

import click

from ..core.models import User
from ..manager import SessionManager
from ..settings import SETTINGS, Settings, load_deployment_secret
from ..store import Store, open_store
from .running import CliError, load_settings

__all__ = ["admin_settings", "open_manager", "store_for", "store_options", "user_named"]

_STORE_URL = next(s for s in SETTINGS if s.name == "store_url")


def store_options(command: Callable[..., Any]) -> Callable[..., Any]:
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
        help=f"The store [env {_STORE_URL.env}; default {_STORE_URL.default_text}].",
    )(command)


def admin_settings(store_url: str | None, secret_file: str | None) -> Settings:
    overrides: dict[str, Any] = {}
    if store_url is not None:
        overrides["store_url"] = store_url
    if secret_file is not None:
        overrides["secret_file"] = secret_file
    return load_settings(overrides)


def store_for(settings: Settings) -> Store:
    """The (unopened) store; a missing secret for PostgreSQL is reported before anything
    else, and a bad URL as a bad URL (not as a missing secret)."""
    if settings.store_url.partition("://")[0] in {"postgresql", "postgres"}:
        # Every instance must share one secret, so none is generated (spec §8).
        load_deployment_secret(settings)
    return open_store(settings.store_url, settings=settings)


@asynccontextmanager
async def open_manager(settings: Settings) -> AsyncIterator[SessionManager]:
    async with SessionManager(settings, store_for(settings)) as manager:
        yield manager


async def user_named(manager: SessionManager, name: str) -> User:
    user = await manager.store.get_user_by_name(name.strip())
    if user is None:
        raise CliError(f"unknown user {name!r}")
    return user
