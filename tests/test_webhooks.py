"""Security events as signed webhooks: signing, sealing, URLs, messages, retries, the worker.

The worker tests send real HTTP to a receiver on 127.0.0.1 (tests/webhook_receiver.py)
and drive time with a frozen clock set to now (receivers check the signed timestamp).
"""

from __future__ import annotations

import asyncio
import base64
import json
import random
import re
import time
from collections.abc import AsyncIterator
from typing import Any

import pytest
from standardwebhooks import Webhook, WebhookVerificationError

from keyfob import SessionManager
from keyfob.core.models import EventKind, SecurityEvent
from keyfob.exceptions import ConfigurationError, StoreUnavailable, TokenReused
from keyfob.store.webhook_records import DeliveryStatus, WebhookDelivery, WebhookEndpoint
from keyfob.testing import FAST_SETTINGS, FrozenClock, MemoryStore
from keyfob.webhooks.endpoints import add_endpoint, check_url
from keyfob.webhooks.messages import (
    ALL_EVENT_TYPES,
    DEFAULT_EVENT_TYPES,
    EVENT_TYPES,
    check_event_types,
    message_for,
    ping_message,
)
from keyfob.webhooks.retry import RetryPolicy
from keyfob.webhooks.sealing import derive_sealing_key, seal, secret_text, unseal
from keyfob.webhooks.signing import signed_headers
from keyfob.webhooks.worker import WebhookWorker

from .conftest import PASSWORD
from .webhook_receiver import Receiver

KEY = derive_sealing_key(b"k" * 48)
OLD_KEY = derive_sealing_key(b"o" * 48)

# The example of the Standard Webhooks specification (and of every reference library).
SPEC_SECRET = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"
SPEC_ID = "msg_p5jXN8AQM9LWM0D4loKWxJek"
SPEC_TIMESTAMP = 1614265330
SPEC_BODY = '{"test": 2432232314}'
SPEC_SIGNATURE = "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE="


# signing


def test_signatures_match_the_specification_example() -> None:
    """The published example reproduces exactly: id, timestamp, body and key decoding."""
    secret = base64.b64decode(SPEC_SECRET.removeprefix("whsec_"))
    headers = signed_headers(secret, SPEC_ID, SPEC_TIMESTAMP, SPEC_BODY)
    assert headers == {
        "webhook-id": SPEC_ID,
        "webhook-timestamp": str(SPEC_TIMESTAMP),
        "webhook-signature": SPEC_SIGNATURE,
        "content-type": "application/json",
    }


def test_the_reference_verifier_accepts_what_keyfob_signs_and_nothing_altered() -> None:
    """standardwebhooks.Webhook.verify accepts a keyfob signature with the whsec_ text a
    receiver is given, and refuses an altered body or another secret."""
    secret = bytes(range(32))
    message = ping_message(time.time())
    headers = signed_headers(secret, message.message_id, int(time.time()), message.payload)
    verified = Webhook(secret_text(secret)).verify(message.payload, headers)
    assert verified["type"] == "webhook.test"
    with pytest.raises(WebhookVerificationError):
        Webhook(secret_text(secret)).verify(message.payload.replace("test", "tost"), headers)
    with pytest.raises(WebhookVerificationError):
        Webhook(secret_text(bytes(32))).verify(message.payload, headers)


# sealing


def test_a_sealed_secret_opens_only_with_its_key_and_endpoint() -> None:
    """Sealed under the deployment secret's key and bound to the endpoint id."""
    secret = bytes(range(32))
    sealed = seal(KEY, "ep_1", secret)
    assert secret not in sealed
    assert unseal([KEY], "ep_1", sealed) == secret
    with pytest.raises(ConfigurationError, match="ep_2"):
        unseal([KEY], "ep_2", sealed)
    with pytest.raises(ConfigurationError):
        unseal([OLD_KEY], "ep_1", sealed)


def test_secrets_sealed_under_a_previous_deployment_secret_still_open() -> None:
    """After a rotation of the deployment secret, older endpoints keep working."""
    sealed = seal(OLD_KEY, "ep_1", b"s" * 32)
    assert unseal([KEY, OLD_KEY], "ep_1", sealed) == b"s" * 32


def test_the_sealing_key_is_its_own_derivation() -> None:
    """Not the signing-key KEK of the same secret, and refused for a short secret."""
    from keyfob.core.keys import derive_kek

    assert derive_sealing_key(b"k" * 48) != derive_kek(b"k" * 48)
    with pytest.raises(ConfigurationError):
        derive_sealing_key(b"short")


# URLs (SSRF: what an administrator may register)


@pytest.mark.parametrize(
    "url",
    [
        "https://alerts.example.com/keyfob",
        "http://127.0.0.1:9000/hook?team=sec",
        "https://[::1]:8443/h",
        "http://siem.internal/events",
    ],
)
def test_http_and_https_urls_are_accepted(url: str) -> None:
    """Any http(s) URL with a host, private addresses included (internal receivers)."""
    assert check_url(url) == url


@pytest.mark.parametrize(
    ("url", "why"),
    [
        ("ftp://files.example.com/x", "http"),
        ("file:///etc/passwd", "http"),
        ("gopher://127.0.0.1:6379/_FLUSHALL", "http"),
        ("javascript:alert(1)", "http"),
        ("https:///no-host", "host"),
        ("https://user:pw@example.com/h", "password"),
        ("https://example.com/h#frag", "fragment"),
        ("https://example.com/a b", "spaces"),
        ("https://example.com/\r\nX-Injected: 1", "control"),
        ("https://example.com:99999/h", "valid"),
        ("https://example.com/" + "a" * 3000, "longer"),
    ],
)
def test_other_urls_are_refused_with_a_reason(url: str, why: str) -> None:
    """Only http(s), with a host, without credentials, fragments or odd characters."""
    with pytest.raises(ValueError, match=why):
        check_url(url)


# messages


def test_every_kind_of_security_event_has_a_webhook_type() -> None:
    """A new EventKind must be given a type here (the fallback is only a safety net)."""
    assert set(EVENT_TYPES) == set(EventKind)
    assert len(set(EVENT_TYPES.values())) == len(EVENT_TYPES)
    assert set(DEFAULT_EVENT_TYPES) <= set(ALL_EVENT_TYPES)


def test_a_message_carries_the_event() -> None:
    """The body is {type, timestamp, data}; a revocation names its reason."""
    event = SecurityEvent(
        kind=EventKind.REVOKE,
        at=1_800_000_000.5,
        user_id="u1",
        sid="s1",
        ip="10.0.0.7",
        detail="admin sessions=3",
    )
    message = message_for(event)
    assert message.event_type == "session.revoked"
    assert message.message_id.startswith("msg_")
    body = json.loads(message.payload)
    assert body == {
        "type": "session.revoked",
        "timestamp": "2027-01-15T08:00:00.500000Z",
        "data": {
            "kind": "revoke",
            "at": 1_800_000_000.5,
            "user_id": "u1",
            "sid": "s1",
            "ip": "10.0.0.7",
            "detail": "admin sessions=3",
            "reason": "admin",
        },
    }
    assert message_for(event).message_id != message.message_id


def test_unknown_event_types_are_refused() -> None:
    """Subscriptions name known types; repeats are dropped."""
    assert check_event_types(("login.failed", "login.failed")) == ("login.failed",)
    with pytest.raises(ValueError, match="nope"):
        check_event_types(("nope",))
    with pytest.raises(ValueError, match=re.escape("login.failed,x")):
        check_event_types(("login.failed,x",))


# retries


def test_the_backoff_grows_from_seconds_to_hours_with_jitter_and_ends() -> None:
    """5 s, 20 s, ... capped at 10 h, each within ±20 %; none after the last attempt."""
    policy = RetryPolicy()
    rng = random.Random(7)  # noqa: S311 - jitter, not a secret
    bases = [5.0, 20.0, 80.0, 320.0, 1280.0, 5120.0, 20480.0, 36000.0, 36000.0]
    for failed, base in enumerate(bases, start=1):
        waits = [policy.delay(failed, rng) for _ in range(50)]
        assert all(w is not None and 0.8 * base <= w <= 1.2 * base for w in waits)
        assert len(set(waits)) > 1
    assert policy.delay(10, rng) is None
    assert RetryPolicy(max_attempts=2, jitter=0).delay(1, rng) == 5.0


def test_a_retry_policy_refuses_nonsense() -> None:
    """Attempts, delays and jitter out of range are refused when the policy is made."""
    with pytest.raises(ValueError, match="max_attempts"):
        RetryPolicy(max_attempts=0)
    with pytest.raises(ValueError, match="max_delay"):
        RetryPolicy(first_delay=10, max_delay=5)
    with pytest.raises(ValueError, match="jitter"):
        RetryPolicy(jitter=1.0)


# the event log fills the outbox


async def test_recording_an_event_adds_a_delivery_for_subscribed_endpoints() -> None:
    """A reuse detection through the manager leaves one signed-to-be delivery per endpoint
    that wants it, and none for an endpoint that does not."""
    store = MemoryStore()
    clock = FrozenClock(time.time())
    async with SessionManager(FAST_SETTINGS, store, clock=clock) as manager:
        wants, _ = await add_endpoint(store, "https://a.example/h", keys=[KEY], now=clock.now())
        await add_endpoint(
            store, "https://b.example/h", keys=[KEY], now=clock.now(), event_types=["login.failed"]
        )
        await manager.register("alice", PASSWORD)
        first = await manager.login("alice", PASSWORD)
        clock.advance(1)
        await manager.refresh(first.refresh_token.value)
        clock.advance(60)
        with pytest.raises(TokenReused):
            await manager.refresh(first.refresh_token.value)
    deliveries = await store.list_webhook_deliveries()
    assert [(d.endpoint_id, d.event_type) for d in deliveries] == [
        (wants.id, "session.reuse_detected")
    ]
    data = json.loads(deliveries[0].payload)["data"]
    assert data["sid"] == first.session.sid
    assert data["detail"].startswith("rule=previous_token_outside_grace revoked=1")


# the worker, against a real receiver


@pytest.fixture
def clock() -> FrozenClock:
    return FrozenClock(time.time())


@pytest.fixture
async def outbox() -> MemoryStore:
    return MemoryStore()


@pytest.fixture
async def worker(outbox: MemoryStore, clock: FrozenClock) -> AsyncIterator[WebhookWorker]:
    w = WebhookWorker(
        outbox,
        keys=[KEY],
        clock=clock,
        policy=RetryPolicy(max_attempts=3, jitter=0),
        attempt_timeout=2.0,
        poll_interval=0.05,
    )
    try:
        yield w
    finally:
        await w.close()


async def endpoint_for(
    store: MemoryStore, url: str, clock: FrozenClock
) -> tuple[WebhookEndpoint, str]:
    return await add_endpoint(store, url, keys=[KEY], now=clock.now(), event_types=["webhook.test"])


async def test_a_delivery_arrives_signed_and_is_logged(
    outbox: MemoryStore, worker: WebhookWorker, clock: FrozenClock
) -> None:
    """The receiver gets the body with Standard Webhooks headers that its library verifies."""
    with Receiver([204]) as receiver:
        endpoint, secret = await endpoint_for(outbox, receiver.url, clock)
        message = ping_message(clock.now())
        await outbox.enqueue_webhook(message, now=clock.now())
        [result] = await worker.deliver_due()
        [got] = receiver.received
    assert result is not None
    assert (result.status_code, result.error) == (204, "")
    assert got.path == "/hooks/keyfob"
    assert got.body.decode() == message.payload
    assert got.headers["webhook-id"] == message.message_id
    assert got.headers["user-agent"].startswith("keyfob-webhooks")
    Webhook(secret).verify(got.body, got.headers)
    [logged] = await outbox.list_webhook_deliveries()
    assert (logged.status, logged.attempts, logged.last_status_code, logged.next_attempt_at) == (
        DeliveryStatus.DELIVERED,
        1,
        204,
        None,
    )
    assert logged.endpoint_id == endpoint.id


async def test_a_failed_attempt_is_retried_after_the_backoff_with_the_same_id(
    outbox: MemoryStore, worker: WebhookWorker, clock: FrozenClock
) -> None:
    """500, then 200 five seconds later: two attempts, one webhook-id, each freshly signed."""
    with Receiver([500, 200]) as receiver:
        _, secret = await endpoint_for(outbox, receiver.url, clock)
        await outbox.enqueue_webhook(ping_message(clock.now()), now=clock.now())
        [first] = await worker.deliver_due()
        assert first is not None
        assert (first.status_code, first.error) == (500, "HTTP 500")
        [pending] = await outbox.list_webhook_deliveries()
        assert pending.status is DeliveryStatus.PENDING
        assert pending.next_attempt_at == pytest.approx(clock.now() + 5.0)
        clock.advance(4.9)
        assert await worker.deliver_due() == []
        clock.advance(0.2)
        [second] = await worker.deliver_due()
        assert second is not None
        assert second.status_code == 200
        a, b = receiver.received
    assert a.message_id == b.message_id
    assert a.body == b.body
    assert int(b.headers["webhook-timestamp"]) >= int(a.headers["webhook-timestamp"]) + 5
    Webhook(secret).verify(b.body, b.headers)
    [logged] = await outbox.list_webhook_deliveries()
    assert (logged.status, logged.attempts, logged.last_status_code) == (
        DeliveryStatus.DELIVERED,
        2,
        200,
    )


async def test_after_the_last_attempt_a_delivery_is_failed(
    outbox: MemoryStore, worker: WebhookWorker, clock: FrozenClock
) -> None:
    """Three 503s with max_attempts=3: marked failed, never sent again."""
    with Receiver([503]) as receiver:
        await endpoint_for(outbox, receiver.url, clock)
        await outbox.enqueue_webhook(ping_message(clock.now()), now=clock.now())
        for _ in range(3):
            await worker.deliver_due()
            clock.advance(3600)
        assert await worker.deliver_due() == []
        assert len(receiver.received) == 3
    [logged] = await outbox.list_webhook_deliveries()
    assert (logged.status, logged.attempts, logged.next_attempt_at) == (
        DeliveryStatus.FAILED,
        3,
        None,
    )


async def test_a_receiver_that_does_not_answer_costs_one_timeout(
    outbox: MemoryStore, worker: WebhookWorker, clock: FrozenClock
) -> None:
    """A hanging receiver: the attempt ends at attempt_timeout and is scheduled again."""
    with Receiver() as receiver:
        receiver.hang()
        await endpoint_for(outbox, receiver.url, clock)
        await outbox.enqueue_webhook(ping_message(clock.now()), now=clock.now())
        started = time.monotonic()
        [result] = await worker.deliver_due()
        took = time.monotonic() - started
        assert receiver.holding == 1
    assert result is not None
    assert result.status_code is None
    assert "no answer within 2 s" in result.error
    assert took < 10  # bounded by attempt_timeout (2 s), not by the receiver
    [logged] = await outbox.list_webhook_deliveries()
    assert logged.status is DeliveryStatus.PENDING
    assert logged.last_error == result.error


async def test_redirects_are_not_followed(
    outbox: MemoryStore, worker: WebhookWorker, clock: FrozenClock
) -> None:
    """A 307 is a failed attempt: keyfob is never bounced to an unregistered address."""
    with Receiver([307]) as receiver:
        await endpoint_for(outbox, receiver.url, clock)
        await outbox.enqueue_webhook(ping_message(clock.now()), now=clock.now())
        [result] = await worker.deliver_due()
        assert len(receiver.received) == 1
    assert result is not None
    assert (result.status_code, result.error) == (307, "HTTP 307")


async def test_an_unreachable_receiver_is_a_failed_attempt(
    outbox: MemoryStore, worker: WebhookWorker, clock: FrozenClock
) -> None:
    """Nothing listening: the error is logged on the delivery, the worker carries on."""
    with Receiver() as receiver:
        url = receiver.url
    await endpoint_for(outbox, url, clock)
    await outbox.enqueue_webhook(ping_message(clock.now()), now=clock.now())
    [result] = await worker.deliver_due()
    assert result is not None
    assert result.status_code is None
    assert "ConnectError" in result.error


async def test_a_secret_sealed_under_an_unknown_deployment_secret_is_not_sent(
    outbox: MemoryStore, clock: FrozenClock
) -> None:
    """Without the key that sealed the secret, nothing is sent and the log says why."""
    other = WebhookWorker(outbox, keys=[OLD_KEY], clock=clock)
    try:
        with Receiver() as receiver:
            await endpoint_for(outbox, receiver.url, clock)
            await outbox.enqueue_webhook(ping_message(clock.now()), now=clock.now())
            [result] = await other.deliver_due()
            assert receiver.received == []
    finally:
        await other.close()
    assert result is not None
    assert "cannot open the signing secret" in result.error


async def test_the_background_loop_delivers_what_the_event_log_enqueues(
    outbox: MemoryStore, clock: FrozenClock
) -> None:
    """start() polls the outbox; close() stops it. Several messages, each once."""
    background = WebhookWorker(outbox, keys=[KEY], clock=clock, poll_interval=0.05, max_in_flight=2)
    with Receiver() as receiver:
        await endpoint_for(outbox, receiver.url, clock)
        messages = [ping_message(clock.now()) for _ in range(5)]
        for m in messages:
            await outbox.enqueue_webhook(m, now=clock.now())
        background.start()
        try:
            await asyncio.to_thread(receiver.wait_for, 5, timeout=20)
        finally:
            await background.close()
        ids = [r.message_id for r in receiver.received]
    assert sorted(ids) == sorted(m.message_id for m in messages)
    statuses = {d.status for d in await outbox.list_webhook_deliveries()}
    assert statuses == {DeliveryStatus.DELIVERED}


class FlakyOutbox(MemoryStore):
    """A memory store whose first claims fail: once as a store outage, once unexpectedly."""

    def __init__(self) -> None:
        super().__init__()
        self.failures: list[Exception] = [StoreUnavailable("down"), RuntimeError("boom")]

    async def claim_webhook_deliveries(self, **kwargs: Any) -> list[WebhookDelivery]:
        if self.failures:
            raise self.failures.pop(0)
        return await super().claim_webhook_deliveries(**kwargs)


async def test_the_background_loop_outlives_a_failing_store(
    clock: FrozenClock, caplog: pytest.LogCaptureFixture
) -> None:
    """An outage and an unexpected error are logged; the next passes deliver."""
    store = FlakyOutbox()
    background = WebhookWorker(store, keys=[KEY], clock=clock, poll_interval=0.05)
    with Receiver() as receiver:
        await endpoint_for(store, receiver.url, clock)
        await store.enqueue_webhook(ping_message(clock.now()), now=clock.now())
        background.start()
        try:
            await asyncio.to_thread(receiver.wait_for, 1, timeout=20)
        finally:
            await background.close()
    assert store.failures == []
    assert "down" in caplog.text
    assert "unexpected error" in caplog.text
