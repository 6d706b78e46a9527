"""The baseline: a hello-world Starlette route on the same stack as keyfob's server.

    uvicorn --factory hello_starlette:create_app --loop uvloop --http httptools

``GET /`` answers a small JSON object. keyfob's refresh route is compared with this to
show what the refresh itself costs on top of the framework and the HTTP server.
"""

from __future__ import annotations

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route


async def hello(request: Request) -> JSONResponse:
    return JSONResponse({"hello": "world"})


def create_app() -> Starlette:
    return Starlette(routes=[Route("/", hello)])
