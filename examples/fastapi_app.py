"""A small FastAPI app that mounts keyfob and protects its own routes with it.

Run it (settings from KEYFOB_* variables; a SQLite store in the current directory)::

    KEYFOB_ISSUER=http://localhost:8000 uvicorn --factory examples.fastapi_app:build_app

Then register and log in through keyfob's routes, and call the app's own::

    curl -X POST localhost:8000/auth/register -H 'content-type: application/json' \\
         -d '{"username": "alice", "password": "correct horse battery staple"}'
    curl -X POST localhost:8000/auth/login -H 'content-type: application/json' \\
         -d '{"username": "alice", "password": "correct horse battery staple", "transport": "body"}'
    curl localhost:8000/notes -H "Authorization: Bearer $ACCESS_TOKEN"
"""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, FastAPI
from pydantic import BaseModel, Field

from keyfob import Clock, Principal, Settings, Store
from keyfob.integrations.fastapi import KeyfobAuth, require_session

#: The caller of a route that needs a logged-in user.
Session = Annotated[Principal, Depends(require_session())]
#: The caller of a route that needs the ``notes:admin`` scope as well.
Admin = Annotated[Principal, Depends(require_session(scopes=["notes:admin"]))]


class NoteIn(BaseModel):
    text: str = Field(min_length=1, max_length=1000)


class Note(BaseModel):
    id: int
    text: str


def build_app(
    settings: Settings | None = None, store: Store | None = None, clock: Clock | None = None
) -> FastAPI:
    """The app; ``uvicorn --factory`` calls it with no arguments (settings from the env)."""
    auth = KeyfobAuth.from_settings(settings or Settings.from_env(), store, clock=clock)
    app = FastAPI(title="Notes, protected by keyfob", lifespan=auth.lifespan)
    auth.install(app)  # /auth/*, /oauth/*, /.well-known/* served by this app
    notes: dict[str, list[Note]] = {}

    @app.get("/health")
    async def health() -> dict[str, str]:
        """Public: no token needed."""
        return {"status": "ok"}

    @app.get("/notes")
    async def list_notes(principal: Session) -> list[Note]:
        """The caller's notes."""
        return notes.get(principal.user_id, [])

    @app.post("/notes", status_code=201)
    async def add_note(note: NoteIn, principal: Session) -> Note:
        """Add a note for the caller."""
        mine = notes.setdefault(principal.user_id, [])
        created = Note(id=len(mine) + 1, text=note.text)
        mine.append(created)
        return created

    @app.get("/admin/stats")
    async def stats(principal: Admin) -> dict[str, int]:
        """Needs the notes:admin scope (first-party logins have no scopes)."""
        return {"users": len(notes), "notes": sum(len(n) for n in notes.values())}

    return app
