"""A Flask API that trusts a keyfob auth server: tokens verified locally from its JWKS.

Run it beside ``keyfob serve`` (which serves on http://localhost:8000)::

    KEYFOB_ISSUER=http://localhost:8000 flask --app examples/flask_api.py run --port 5001

Log in at keyfob with the body transport and call the API with the access token::

    curl -X POST localhost:8000/auth/login -H 'content-type: application/json' \\
         -d '{"username": "alice", "password": "correct horse battery staple", "transport": "body"}'
    curl localhost:5001/notes -H "Authorization: Bearer $ACCESS_TOKEN"
"""

from __future__ import annotations

import os
from typing import Any

from flask import Flask, request

from keyfob.integrations.flask import Keyfob, current_principal, require_session
from keyfob.resource_server import RemoteVerifier


def create_app(
    config: dict[str, Any] | None = None, verifier: RemoteVerifier | None = None
) -> Flask:
    """The app; ``flask --app`` calls it with no arguments (settings from the environment)."""
    app = Flask(__name__)
    app.config["KEYFOB_ISSUER"] = os.environ.get("KEYFOB_ISSUER", "http://localhost:8000")
    app.config["KEYFOB_AUDIENCE"] = os.environ.get("KEYFOB_AUDIENCE")
    app.config.update(config or {})
    Keyfob(app, verifier=verifier)
    notes: dict[str, list[dict[str, Any]]] = {}

    @app.get("/health")
    def health() -> dict[str, str]:
        """Public: no token needed."""
        return {"status": "ok"}

    @app.get("/notes")
    @require_session()
    def list_notes() -> list[dict[str, Any]]:
        """The caller's notes."""
        return notes.get(current_principal.user_id, [])

    @app.post("/notes")
    @require_session(scopes=["notes:write"])
    def add_note() -> tuple[dict[str, Any], int]:
        """Needs the notes:write scope."""
        text = str((request.get_json(silent=True) or {}).get("text", ""))[:1000]
        mine = notes.setdefault(current_principal.user_id, [])
        mine.append({"id": len(mine) + 1, "text": text})
        return mine[-1], 201

    return app
