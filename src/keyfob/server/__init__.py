"""keyfob's auth server: the ASGI app (``create_app``), its routes and error mapping.

    from keyfob.server import create_app
    app = create_app(Settings.from_env())

Needs the ``server`` extra (Starlette, uvicorn, limits).
"""

from __future__ import annotations

from .app import DEFAULT_ISSUER, app_from_env, create_app
from .ratelimit import RateLimiter, RateLimits

__all__ = ["DEFAULT_ISSUER", "RateLimiter", "RateLimits", "app_from_env", "create_app"]
