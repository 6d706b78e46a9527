"""``keyfob webhooks add | list | test | deliveries | disable | enable | remove``."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from click.testing import CliRunner, Result
from standardwebhooks import Webhook

from keyfob.cli import cli
from keyfob.settings import SETTINGS

from .webhook_receiver import Receiver

SECRET = "cli-webhook-test-secret-cli-webhook-test-secret-0123"


@pytest.fixture(autouse=True)
def store_url(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> str:
    for setting in SETTINGS:
        monkeypatch.setenv(setting.env, "")
    url = f"sqlite:///{tmp_path / 'keyfob.db'}"
    monkeypatch.setenv("KEYFOB_STORE_URL", url)
    monkeypatch.setenv("KEYFOB_SECRET", SECRET)
    return url


def run(*args: str) -> Result:
    return CliRunner().invoke(cli, ["webhooks", *args], catch_exceptions=False)


def add(url: str, *flags: str) -> tuple[str, str]:
    """Register ``url``; its endpoint id and whsec_ secret, as printed."""
    result = run("add", url, *flags)
    assert result.exit_code == 0, result.output
    endpoint_id = re.search(r"endpoint (ep_\S+):", result.output)
    secret = re.search(r"(whsec_\S+)", result.output)
    assert endpoint_id is not None
    assert secret is not None
    return endpoint_id.group(1), secret.group(1)


def one_line_error(result: Result) -> str:
    assert result.exit_code == 2
    lines = [line for line in result.stderr.splitlines() if line.startswith("Error:")]
    assert len(lines) == 1, result.stderr
    assert "Traceback" not in result.output
    return lines[0]


def test_add_shows_the_secret_once_and_list_never() -> None:
    """The secret is printed by add; list shows the endpoint, its events, never the secret."""
    endpoint_id, secret = add("https://alerts.example.com/kf", "--description", "SOC pager")
    listed = run("list")
    assert listed.exit_code == 0
    assert endpoint_id in listed.output
    assert "https://alerts.example.com/kf" in listed.output
    assert "session.reuse_detected" in listed.output
    assert "SOC pager" in listed.output
    assert secret not in listed.output
    assert secret.removeprefix("whsec_") not in listed.output


def test_add_refuses_urls_keyfob_must_not_call() -> None:
    """Non-http(s) schemes and credentials in the URL are one clear line, exit 2."""
    assert "http" in one_line_error(run("add", "file:///etc/passwd"))
    assert "password" in one_line_error(run("add", "https://u:p@example.com/"))
    assert "no webhooks" in run("list").output


def test_add_takes_event_types_and_refuses_unknown_ones() -> None:
    """--event picks the types; an unknown one is a usage error."""
    add("https://a.example/h", "--event", "login.failed", "--event", "user.password_changed")
    assert "login.failed user.password_changed" in run("list").output
    result = run("add", "https://a.example/h", "--event", "nope.nope")
    assert result.exit_code == 2
    assert "nope.nope" in result.output


def test_test_sends_a_signed_message_and_deliveries_shows_it() -> None:
    """`test` delivers at once with the secret add printed; `deliveries` logs it."""
    with Receiver([200]) as receiver:
        endpoint_id, secret = add(receiver.url)
        result = run("test", endpoint_id)
        assert result.exit_code == 0, result.output
        assert "delivered: HTTP 200" in result.output
        [got] = receiver.received
    payload = Webhook(secret).verify(got.body, got.headers)
    assert payload["type"] == "webhook.test"
    log = run("deliveries")
    assert log.exit_code == 0
    assert re.search(rf"{endpoint_id}\s+webhook\.test\s+delivered\s+1\s", log.output)


def test_a_failing_test_is_reported_and_left_for_retries() -> None:
    """A 500 is one error line; the delivery waits in the outbox for `keyfob serve`."""
    with Receiver([500]) as receiver:
        endpoint_id, _ = add(receiver.url)
        line = one_line_error(run("test", endpoint_id))
    assert "HTTP 500" in line
    assert "retried" in line
    pending = run("deliveries", "--status", "pending", "--endpoint", endpoint_id)
    assert "webhook.test" in pending.output
    assert "HTTP 500" in pending.output


def test_disable_enable_and_remove() -> None:
    """A disabled endpoint is not sent to (its messages wait for the server's worker);
    removed, it and its log are gone."""
    with Receiver([200]) as receiver:
        endpoint_id, _ = add(receiver.url)
        assert run("disable", endpoint_id).exit_code == 0
        assert "disabled" in one_line_error(run("test", endpoint_id))
        assert receiver.received == []
        assert run("enable", endpoint_id).exit_code == 0
        assert run("test", endpoint_id).exit_code == 0
        assert len(receiver.received) == 1
    assert "webhook.test" in run("deliveries", "--status", "pending").output
    assert "webhook.test" in run("deliveries", "--status", "delivered").output
    assert run("remove", endpoint_id).exit_code == 0
    assert "no webhooks" in run("list").output
    assert "no deliveries" in run("deliveries").output
    assert endpoint_id in one_line_error(run("remove", endpoint_id))
    assert endpoint_id in one_line_error(run("test", endpoint_id))
