"""Thin adapters between keyfob and web frameworks: one module per framework.

- :mod:`keyfob.integrations.starlette`: ``KeyfobBackend``, a Starlette
  ``AuthenticationBackend`` that verifies bearer access tokens locally.
- :mod:`keyfob.integrations.fastapi`: ``KeyfobAuth`` (keyfob's routes inside your app)
  and the ``require_session()`` dependency.

Nothing is imported here, so ``import keyfob.integrations`` needs no framework; each
module needs its own (``pip install 'keyfob[server]'`` or ``'keyfob[fastapi]'``).
"""

from __future__ import annotations

__all__: list[str] = []
