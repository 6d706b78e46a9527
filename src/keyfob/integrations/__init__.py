"""Thin adapters between keyfob and web frameworks: one module per framework.

- :mod:`keyfob.integrations.starlette`: ``KeyfobBackend``, a Starlette
  ``AuthenticationBackend`` that verifies bearer access tokens locally.
- :mod:`keyfob.integrations.fastapi`: ``KeyfobAuth`` (keyfob's routes inside your app)
  and the ``require_session()`` dependency.
Both verify access tokens through one framework-free protocol,
:class:`keyfob.transports.bearer.TokenVerifier` (a ``SessionManager``, a store-free
:class:`keyfob.verifier.Verifier`, or a verifier of tokens issued elsewhere).

Nothing is imported here, so ``import keyfob.integrations`` needs no framework; each
framework's module needs its own (``pip install 'keyfob[server]'`` or ``'keyfob[fastapi]'``).
"""

from __future__ import annotations

__all__: list[str] = []
