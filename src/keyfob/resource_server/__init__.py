"""For services that are not the auth server: verify keyfob access tokens locally.

:class:`RemoteVerifier` fetches and caches the issuer's JWKS and verifies tokens with no
request to keyfob per API call. The Starlette/FastAPI integrations take it as their
verifier; the Flask and Django integrations are built on it. Needs httpx
(``pip install 'keyfob[resource]'``, or the ``flask``/``django`` extras).
"""

from __future__ import annotations

from .feed import FeedHealth, FeedSettings
from .jwks import JWKSPolicy, KeyCacheHealth
from .verifier import RemoteVerifier

__all__ = ["FeedHealth", "FeedSettings", "JWKSPolicy", "KeyCacheHealth", "RemoteVerifier"]
