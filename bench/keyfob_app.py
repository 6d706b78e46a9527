"""keyfob's auth server as the benchmark runs it: ``create_app(Settings.from_env())`` with
the rate limits raised far above the benchmark's load.

The limits still run on every request (their cost is measured); they are only raised
because the benchmark concentrates thousands of logins and refreshes per second on a
few dozen sessions from one address, which the production limits rightly refuse::

    uvicorn --factory --app-dir bench keyfob_app:create --loop uvloop --http httptools
"""

from __future__ import annotations

import dataclasses

from starlette.applications import Starlette

from keyfob.server import RateLimits, create_app
from keyfob.settings import Settings

_UNLIMITED = "100000000/minute"


def bench_rate_limits() -> RateLimits:
    """Every ``…_per_…`` limit of :class:`RateLimits` raised to 100 million a minute."""
    raised = {
        field.name: _UNLIMITED
        for field in dataclasses.fields(RateLimits)
        if "_per_" in field.name and isinstance(field.default, str)
    }
    return RateLimits(**raised)


def create() -> Starlette:
    return create_app(Settings.from_env(), rate_limits=bench_rate_limits())
