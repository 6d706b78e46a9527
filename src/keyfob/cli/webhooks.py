"""``keyfob webhooks``: where security events are sent, and how their deliveries went.

Registering a URL is an administrator's act, here and nowhere else: no HTTP route adds
or changes an endpoint (docs/webhooks.md, "Who can point keyfob at a URL"). The signing
secret is printed once, by ``add``; the store keeps it sealed.
"""

from __future__ import annotations

import time

import click

from ..settings import Settings, load_deployment_secret
from ..store.webhook_records import DeliveryStatus, WebhookEndpoint
from ..webhooks.endpoints import add_endpoint
from ..webhooks.messages import ALL_EVENT_TYPES, DEFAULT_EVENT_TYPES, ping_message
from ..webhooks.sealing import derive_sealing_key
from .output import echo_table, when
from .running import CliError, run
from .store_access import admin_settings, open_manager, store_options

__all__ = ["webhooks"]


def _sealing_keys(settings: Settings) -> list[bytes]:
    return [derive_sealing_key(s) for s in load_deployment_secret(settings)]


@click.group()
def webhooks() -> None:
    """Send security events (reuse detected, revocations, password changes ...) to URLs
    as signed webhooks (Standard Webhooks)."""


@webhooks.command("add")
@click.argument("url")
@click.option(
    "--event",
    "event_types",
    multiple=True,
    type=click.Choice(ALL_EVENT_TYPES),
    help=f"An event type to send (repeatable) [default: {', '.join(DEFAULT_EVENT_TYPES)}].",
)
@click.option("--description", default="", help="A note shown by `webhooks list`.")
@store_options
def webhooks_add(
    url: str,
    event_types: tuple[str, ...],
    description: str,
    store_url: str | None,
    secret_file: str | None,
) -> None:
    """Register URL as a webhook endpoint and print its signing secret (shown only once)."""
    settings = admin_settings(store_url, secret_file)

    async def work() -> tuple[WebhookEndpoint, str]:
        async with open_manager(settings) as manager:
            return await add_endpoint(
                manager.store,
                url,
                keys=_sealing_keys(settings),
                now=manager.clock.now(),
                event_types=event_types,
                description=description,
            )

    try:
        endpoint, secret = run(work)
    except ValueError as exc:
        raise CliError(f"refused {url!r}: {exc}") from None
    click.echo(f"added webhook endpoint {endpoint.id}: {endpoint.url}")
    click.echo(f"events: {', '.join(endpoint.event_types)}")
    click.echo(f"signing secret (shown only now, store it with the receiver): {secret}")


@webhooks.command("list")
@store_options
def webhooks_list(store_url: str | None, secret_file: str | None) -> None:
    """List the webhook endpoints (never their secrets)."""
    settings = admin_settings(store_url, secret_file)

    async def work() -> list[WebhookEndpoint]:
        async with open_manager(settings) as manager:
            return await manager.store.list_webhook_endpoints()

    rows = [
        (
            e.id,
            "yes" if e.enabled else "no",
            when(e.created_at),
            e.url,
            " ".join(e.event_types),
            e.description or "-",
        )
        for e in run(work)
    ]
    echo_table(("ID", "ENABLED", "CREATED", "URL", "EVENTS", "DESCRIPTION"), rows, "no webhooks")


def _change(settings: Settings, endpoint_id: str, enabled: bool | None) -> None:
    async def work() -> bool:
        async with open_manager(settings) as manager:
            if enabled is None:
                return await manager.store.remove_webhook_endpoint(endpoint_id)
            return await manager.store.set_webhook_endpoint_enabled(endpoint_id, enabled)

    if not run(work):
        raise CliError(f"no webhook endpoint {endpoint_id!r}")


@webhooks.command("remove")
@click.argument("endpoint_id")
@store_options
def webhooks_remove(endpoint_id: str, store_url: str | None, secret_file: str | None) -> None:
    """Remove an endpoint and its delivery log."""
    _change(admin_settings(store_url, secret_file), endpoint_id, None)
    click.echo(f"removed webhook endpoint {endpoint_id}")


@webhooks.command("disable")
@click.argument("endpoint_id")
@store_options
def webhooks_disable(endpoint_id: str, store_url: str | None, secret_file: str | None) -> None:
    """Stop sending to an endpoint; its pending deliveries wait until it is enabled."""
    _change(admin_settings(store_url, secret_file), endpoint_id, False)
    click.echo(f"disabled webhook endpoint {endpoint_id}")


@webhooks.command("enable")
@click.argument("endpoint_id")
@store_options
def webhooks_enable(endpoint_id: str, store_url: str | None, secret_file: str | None) -> None:
    """Send to an endpoint again, its waiting deliveries first."""
    _change(admin_settings(store_url, secret_file), endpoint_id, True)
    click.echo(f"enabled webhook endpoint {endpoint_id}")


@webhooks.command("test")
@click.argument("endpoint_id")
@store_options
def webhooks_test(endpoint_id: str, store_url: str | None, secret_file: str | None) -> None:
    """Send a signed webhook.test message to an endpoint now and show the answer.

    A failed test stays in the outbox: `keyfob serve` retries it like any delivery.
    """
    settings = admin_settings(store_url, secret_file)
    try:
        from ..webhooks.worker import WebhookWorker
    except ImportError:
        raise CliError(
            "keyfob webhooks test needs the 'server' extra: pip install 'keyfob[server]'"
        ) from None

    async def work() -> tuple[int | None, str, float]:
        async with open_manager(settings) as manager:
            store = manager.store
            if await store.get_webhook_endpoint(endpoint_id) is None:
                raise CliError(f"no webhook endpoint {endpoint_id!r}")
            message = ping_message(manager.clock.now())
            await store.enqueue_webhook(message, now=manager.clock.now(), endpoint_id=endpoint_id)
            worker = WebhookWorker(store, keys=_sealing_keys(settings), clock=manager.clock)
            started = time.monotonic()
            try:
                results = await worker.deliver_due(message_id=message.message_id)
            finally:
                await worker.close()
            took = time.monotonic() - started
        if not results:
            # Disabled endpoints' deliveries are not claimed: the message waits for it.
            raise CliError(f"webhook endpoint {endpoint_id} is disabled; the test waits for it")
        result = results[0]
        if result is None:
            raise CliError("the test attempt could not be recorded; see the server's log")
        return result.status_code, result.error, took

    status_code, error, took = run(work)
    if error:
        raise CliError(f"the test webhook failed: {error} (after {took:.1f} s); it will be retried")
    click.echo(f"delivered: HTTP {status_code} in {took:.1f} s")


@webhooks.command("deliveries")
@click.option("--endpoint", "endpoint_id", default=None, help="Only this endpoint's deliveries.")
@click.option("--status", type=click.Choice([s.value for s in DeliveryStatus]), default=None)
@click.option("--limit", default=50, show_default=True, type=click.IntRange(1, 10_000))
@store_options
def webhooks_deliveries(
    endpoint_id: str | None,
    status: str | None,
    limit: int,
    store_url: str | None,
    secret_file: str | None,
) -> None:
    """Show the delivery log, newest first: status, attempts, last answer, next attempt."""
    settings = admin_settings(store_url, secret_file)

    async def work() -> list[tuple[object, ...]]:
        async with open_manager(settings) as manager:
            found = await manager.store.list_webhook_deliveries(
                endpoint_id=endpoint_id,
                status=DeliveryStatus(status) if status is not None else None,
                limit=limit,
            )
        return [
            (
                d.id,
                d.endpoint_id,
                d.event_type,
                d.status.value,
                d.attempts,
                when(d.last_attempt_at),
                d.last_status_code if d.last_status_code is not None else "-",
                when(d.next_attempt_at),
                d.last_error or "-",
            )
            for d in found
        ]

    headers = ("ID", "ENDPOINT", "TYPE", "STATUS", "ATTEMPTS", "LAST", "CODE", "NEXT", "ERROR")
    echo_table(headers, run(work), "no deliveries")
