"""Documents and files: JWKS, RFC 8414 metadata, the OpenAPI document, the demo page."""

from __future__ import annotations

import json
from pathlib import Path

from starlette.requests import Request
from starlette.responses import FileResponse, Response
from starlette.routing import BaseRoute, Mount, Route
from starlette.staticfiles import StaticFiles

from ..exceptions import NotFound
from ..oauth.metadata import JWKS_PATH, METADATA_PATH, authorization_server_metadata
from .context import ServerContext
from .openapi import openapi_document
from .responses import JSON_MEDIA_TYPE, json_response

__all__ = ["STATIC_DIR", "WellKnownRoutes"]

#: The demo page and keyfob.js, shipped in the package.
STATIC_DIR = Path(__file__).parent / "static"

# Caches must pick up a new key within its publication delay (spec §3 item 6), so the
# JWKS is cached for at most half of it.
_MAX_JWKS_AGE = 3600


class WellKnownRoutes:
    def __init__(self, ctx: ServerContext) -> None:
        self.ctx = ctx
        settings = ctx.settings
        self._metadata = _frozen_json(
            authorization_server_metadata(settings.issuer, scopes=settings.scopes)
        )
        self._jwks_max_age = max(0, min(_MAX_JWKS_AGE, int(settings.key_publish_delay // 2)))
        self._openapi: bytes | None = None

    def routes(self) -> list[BaseRoute]:
        routes: list[BaseRoute] = [
            Route(JWKS_PATH, self.jwks, methods=["GET"]),
            Route(METADATA_PATH, self.metadata, methods=["GET"]),
            Route("/openapi.json", self.openapi, methods=["GET"]),
            Route("/", self.index, methods=["GET"]),
        ]
        if STATIC_DIR.is_dir():
            routes.append(Mount("/static", app=StaticFiles(directory=STATIC_DIR), name="static"))
        return routes

    async def jwks(self, request: Request) -> Response:
        return json_response(
            self.ctx.manager.jwks(),
            headers={"Cache-Control": f"public, max-age={self._jwks_max_age}"},
        )

    async def metadata(self, request: Request) -> Response:
        return Response(
            self._metadata,
            media_type=JSON_MEDIA_TYPE,
            headers={"Cache-Control": "public, max-age=3600"},
        )

    async def openapi(self, request: Request) -> Response:
        if self._openapi is None:
            self._openapi = _frozen_json(openapi_document(self.ctx.settings))
        return Response(self._openapi, media_type=JSON_MEDIA_TYPE)

    async def index(self, request: Request) -> Response:
        page = STATIC_DIR / "index.html"
        if not page.is_file():
            raise NotFound("no demo page is installed")
        return FileResponse(
            page,
            media_type="text/html; charset=utf-8",
            headers={"Cache-Control": "no-cache", "X-Content-Type-Options": "nosniff"},
        )


def _frozen_json(data: object) -> bytes:
    return json.dumps(data, separators=(",", ":"), ensure_ascii=False).encode()
