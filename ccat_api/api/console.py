"""The operator console: a static page (no build step) served by the gateway itself.

The page holds no data and needs no token to load; it asks for one (or uses the GitHub
session's refresh cookie), then reads the REST API and the WebSocket streams like any client.
"""

from __future__ import annotations

from importlib import resources

from fastapi import APIRouter
from fastapi.responses import Response

from ccat_api.api.deps import PUBLIC
from ccat_api.api.routing import CheckedRoute
from ccat_api.errors import NotFound

router = APIRouter(route_class=CheckedRoute, tags=["console"], dependencies=[PUBLIC])

ASSETS = {
    "index.html": "text/html; charset=utf-8",
    "console.js": "text/javascript; charset=utf-8",
    "console.css": "text/css; charset=utf-8",
}
# Only our own scripts and connections back to this gateway: a page that handles admin
# tokens must not load anything from elsewhere.
SECURITY_HEADERS = {
    "Content-Security-Policy": (
        "default-src 'self'; connect-src 'self' ws: wss:; img-src 'self' data:;"
        " frame-ancestors 'none'"
    ),
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
    "Cache-Control": "no-cache",
}


def _asset(name: str) -> Response:
    media_type = ASSETS.get(name)
    if media_type is None:
        raise NotFound(f"no console asset {name!r}")
    body = resources.files("ccat_api.console").joinpath(name).read_bytes()
    return Response(body, media_type=media_type, headers=SECURITY_HEADERS)


@router.get("/console", include_in_schema=False)
async def console_page() -> Response:
    return _asset("index.html")


@router.get("/console/{name}", include_in_schema=False)
async def console_asset(name: str) -> Response:
    return _asset(name)
