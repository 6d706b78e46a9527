"""Rate limits as settings (issue 15.4): ``KEYFOB_RATE_LIMIT_*`` in ``limits`` notation,
checked at startup, and what ``create_app`` enforces."""

from __future__ import annotations

import httpx
import pytest

from keyfob import ConfigurationError, Settings
from keyfob.server import RateLimits, create_app
from keyfob.testing import FAST_SETTINGS, MemoryStore

from .conftest import PASSWORD


@pytest.mark.parametrize(
    ("variable", "text"),
    [
        ("KEYFOB_RATE_LIMIT_LOGIN", "10/fortnight"),
        ("KEYFOB_RATE_LIMIT_LOGIN_ACCOUNT", "lots"),
        ("KEYFOB_RATE_LIMIT_REGISTER", "10/minute;"),
        ("KEYFOB_RATE_LIMIT_REFRESH", "0/minute"),
    ],
)
def test_bad_notation_fails_at_startup_naming_the_variable(variable: str, text: str) -> None:
    with pytest.raises(ConfigurationError, match=variable):
        Settings.from_env(environ={variable: text})


def test_bad_notation_is_refused_from_python_too() -> None:
    with pytest.raises(ConfigurationError, match="KEYFOB_RATE_LIMIT_LOGIN"):
        Settings(rate_limit_login="many")
    with pytest.raises(ConfigurationError, match="login_throttle_after"):
        Settings(login_throttle_after=0)


def test_the_variables_become_the_limits() -> None:
    """Each variable reaches its limit; RateLimits() has the settings' defaults."""
    settings = Settings.from_env(
        environ={
            "KEYFOB_RATE_LIMIT_LOGIN": "5/minute;50/day",
            "KEYFOB_RATE_LIMIT_LOGIN_ACCOUNT": "20 per hour",
            "KEYFOB_RATE_LIMIT_REGISTER": "1/second",
            "KEYFOB_RATE_LIMIT_REFRESH": "600/minute",
            "KEYFOB_LOGIN_THROTTLE_AFTER": "3",
            "KEYFOB_LOGIN_THROTTLE_MAX": "5m",
        }
    )
    assert RateLimits.from_settings(settings) == RateLimits(
        login_per_address="5/minute;50/day",
        login_failures_per_account="20 per hour",
        register_per_address="1/second",
        refresh_per_session="600/minute",
        throttle_after=3,
        throttle_max=300.0,
    )
    assert RateLimits.from_settings(Settings()) == RateLimits()


async def test_create_app_enforces_the_configured_limit() -> None:
    """``KEYFOB_RATE_LIMIT_REGISTER=2/minute``: the third registration gets 429."""
    app = create_app(FAST_SETTINGS.replace(rate_limit_register="2/minute"), MemoryStore())
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app)
        async with httpx.AsyncClient(transport=transport, base_url="https://testserver") as c:
            codes = [
                (
                    await c.post("/auth/register", json={"username": n, "password": PASSWORD})
                ).status_code
                for n in ("a", "b", "c")
            ]
    assert codes == [201, 201, 429]
