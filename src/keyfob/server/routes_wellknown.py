"""Documents and files: JWKS, RFC 8414 metadata and the OpenID Provider configuration
(one document at both paths), the OpenAPI document, the demo page."""

from __future__ import annotations

import json
import os
from pathlib import Path

from starlette.requests import Request
from starlette.responses import FileResponse, Response
from starlette.routing import BaseRoute, Mount, Route
from starlette.staticfiles import StaticFiles
from starlette.types import Scope

from ..exceptions import NotFound
from ..oauth.metadata import (
    JWKS_PATH,
    METADATA_PATH,
    OPENID_CONFIGURATION_PATH,
    openid_provider_metadata,
)
from .context import ServerContext
from .openapi import openapi_document
from .responses import JSON_MEDIA_TYPE, html_headers, json_response

__all__ = ["STATIC_DIR", "WellKnownRoutes"]

#: The demo page, its script and style, shipped in the package.
STATIC_DIR = Path(__file__).parent / "static"
#: keyfob.js has one source, clients/js/keyfob.js (also the npm package). A checkout serves
#: that file; a wheel carries the copy its build makes (setup.py) at static/keyfob.js, which
#: git never holds, so the two cannot drift.
KEYFOB_JS_SOURCE = Path(__file__).resolve().parents[3] / "clients" / "js" / "keyfob.js"

# Caches must pick up a new key within its publication delay (spec §3 item 6), so the
# JWKS is cached for at most half of it.
_MAX_JWKS_AGE = 3600


class WellKnownRoutes:
    def __init__(self, ctx: ServerContext) -> None:
        self.ctx = ctx
        settings = ctx.settings
        # One document at both well-known paths: RFC 8414 and OIDC Discovery agree.
        self._metadata = _frozen_json(
            openid_provider_metadata(
                settings.issuer,
                scopes=settings.scopes,
                id_token_signing_algs=(settings.id_token_alg,),
            )
        )
        self._jwks_max_age = max(0, min(_MAX_JWKS_AGE, int(settings.key_publish_delay // 2)))
        self._openapi: bytes | None = None

    def routes(self) -> list[BaseRoute]:
        routes: list[BaseRoute] = [
            Route(JWKS_PATH, self.jwks, methods=["GET"]),
            Route(METADATA_PATH, self.metadata, methods=["GET"]),
            Route(OPENID_CONFIGURATION_PATH, self.metadata, methods=["GET"]),
            Route("/openapi.json", self.openapi, methods=["GET"]),
            Route("/", self.index, methods=["GET"]),
        ]
        if STATIC_DIR.is_dir():
            static = _StaticFiles(directory=STATIC_DIR, keyfob_js=_keyfob_js())
            routes.append(Mount("/static", app=static, name="static"))
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
            headers=html_headers({"Cache-Control": "no-cache"}),
        )


def _keyfob_js() -> Path | None:
    """The keyfob.js to serve: the checkout's source, else the wheel's built copy."""
    for candidate in (KEYFOB_JS_SOURCE, STATIC_DIR / "keyfob.js"):
        if candidate.is_file():
            return candidate
    return None


class _StaticFiles(StaticFiles):
    """The files in ``static/``, and ``keyfob.js`` from wherever :func:`_keyfob_js` found it
    (with the same ETag, conditional GET and HEAD handling as the rest): never sniffed into
    another type, and an HTML file (``/static/index.html`` is the demo page too) under the
    pages' policy."""

    def __init__(self, *, directory: Path, keyfob_js: Path | None) -> None:
        super().__init__(directory=directory)
        self._keyfob_js = keyfob_js

    def lookup_path(self, path: str) -> tuple[str, os.stat_result | None]:
        if path == "keyfob.js" and self._keyfob_js is not None:
            try:
                return str(self._keyfob_js), os.stat(self._keyfob_js)
            except OSError:
                return "", None
        return super().lookup_path(path)

    def file_response(
        self,
        full_path: str | os.PathLike[str],
        stat_result: os.stat_result,
        scope: Scope,
        status_code: int = 200,
    ) -> Response:
        response = super().file_response(full_path, stat_result, scope, status_code)
        response.headers["X-Content-Type-Options"] = "nosniff"
        if response.headers.get("content-type", "").startswith("text/html"):
            response.headers.update(html_headers())
        return response


def _frozen_json(data: object) -> bytes:
    return json.dumps(data, separators=(",", ":"), ensure_ascii=False).encode()
