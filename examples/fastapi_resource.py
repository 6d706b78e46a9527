"""A FastAPI service that trusts a keyfob auth server (it is not the auth server itself).

Run it beside ``keyfob serve`` (which serves on http://localhost:8000)::

    KEYFOB_ISSUER=http://localhost:8000 \
        uvicorn --factory examples.fastapi_resource:build_app --port 5002

Tokens are verified locally from keyfob's JWKS (no request to keyfob per API call); the
OpenAPI document at /docs declares the Bearer scheme on the protected routes.
"""

from __future__ import annotations

import os
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Annotated

from fastapi import Depends, FastAPI

from keyfob import Principal
from keyfob.integrations.fastapi import KeyfobAuth, require_session
from keyfob.resource_server import RemoteVerifier

Caller = Annotated[Principal, Depends(require_session())]
Writer = Annotated[Principal, Depends(require_session(scopes=["notes:write"]))]


def build_app(verifier: RemoteVerifier | None = None) -> FastAPI:
    """The app; ``uvicorn --factory`` calls it with no arguments (settings from the env)."""
    verifier = verifier or RemoteVerifier(
        os.environ.get("KEYFOB_ISSUER", "http://localhost:8000"),
        audience=os.environ.get("KEYFOB_AUDIENCE") or None,
    )

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        yield
        await verifier.aclose()

    app = FastAPI(title="Notes API, trusting keyfob", lifespan=lifespan)
    KeyfobAuth(verifier).install(app)  # verification only: no keyfob routes here
    notes: dict[str, list[str]] = {}

    @app.get("/health")
    async def health() -> dict[str, object]:
        """Public; says whether the issuer's keys are loaded."""
        keys = verifier.health()
        return {"status": "ok", "keys_loaded": keys.keys_loaded, "keys_fresh": keys.fresh}

    @app.get("/notes")
    async def list_notes(caller: Caller) -> list[str]:
        return notes.get(caller.user_id, [])

    @app.post("/notes", status_code=201)
    async def add_note(text: str, caller: Writer) -> list[str]:
        notes.setdefault(caller.user_id, []).append(text[:1000])
        return notes[caller.user_id]

    return app
