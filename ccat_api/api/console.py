"""The operator console: a static page (no build step) served by the gateway itself, and the
site status history its charts draw.

The page holds no data and needs no token to load; it asks for one (or uses the GitHub
session's refresh cookie), then reads the REST API and the WebSocket streams like any client.
Every URL it uses is relative to the page, so it works under whatever prefix a proxy serves
the gateway at. The charting library (uPlot, MIT) is vendored next to it: no CDN at runtime.
"""

from __future__ import annotations

from importlib import resources
from typing import Annotated, Any

from fastapi import APIRouter, Query, Request
from fastapi.responses import Response

from ccat_api.api.deps import PUBLIC, BufferReadAccess
from ccat_api.api.live import live_of
from ccat_api.api.responses import documented
from ccat_api.api.routing import CheckedRoute
from ccat_api.errors import NotFound
from ccat_api.live.models import SiteHistory

router = APIRouter(route_class=CheckedRoute, tags=["console"])

ASSETS = {
    "index.html": "text/html; charset=utf-8",
    "console.js": "text/javascript; charset=utf-8",
    "console.css": "text/css; charset=utf-8",
    "uPlot.iife.min.js": "text/javascript; charset=utf-8",
    "uPlot.min.css": "text/css; charset=utf-8",
    "uPlot.LICENSE": "text/plain; charset=utf-8",
}
# Epoch seconds up to the year 2100: past it, a "since" is a mistake, not a time.
LATEST_SINCE_S = 4_102_444_800
HISTORY_EXAMPLE: dict[str, Any] = {
    "site": "observatory",
    "interval_s": 10.0,
    "retention_s": 21600,
    "samples": [
        {
            "at": 1795404590.0, "depth": 12, "oldest_pending_age_s": 1.8,
            "accepted": 1207, "applied": 1195, "accept_rate_tx_s": 4.8,
            "drain_rate_tx_s": 3.9, "estimated_drain_s": 3.1, "replica_apply_lag_s": 0.0,
            "main_ok": True,
        },
        {
            "at": 1795404600.0, "depth": 16, "oldest_pending_age_s": 2.3,
            "accepted": 1257, "applied": 1241, "accept_rate_tx_s": 5.0,
            "drain_rate_tx_s": 4.6, "estimated_drain_s": 3.5, "replica_apply_lag_s": 0.0,
            "main_ok": True,
        },
    ],
}  # fmt: skip
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


@router.get("/console", include_in_schema=False, dependencies=[PUBLIC])
async def console_page() -> Response:
    return _asset("index.html")


@router.get("/console/{name}", include_in_schema=False, dependencies=[PUBLIC])
async def console_asset(name: str) -> Response:
    return _asset(name)


@router.get(
    "/api/site/history",
    response_model=SiteHistory,
    responses=documented(HISTORY_EXAMPLE, 401, 403, 422, 503),
    summary="The site status over the last hours (the console's charts), oldest first",
    description="One sample per `history_interval_s` for the whole site (whichever gateway"
    " process took it), kept for `history_retention_s`: buffer depth, oldest pending age,"
    " accept and drain rates with the drain estimate, the replica's apply lag. Pass `since`"
    " (a sample's `at`) to get only newer samples. 503 while the site's Redis is down.",
)
async def site_history(
    request: Request,
    _: BufferReadAccess,
    since: Annotated[
        float | None,
        Query(
            ge=0,
            le=LATEST_SINCE_S,
            allow_inf_nan=False,
            description="Only samples taken after this time (epoch seconds)",
        ),
    ] = None,
) -> SiteHistory:
    history = live_of(request.app.state).history
    return SiteHistory(
        site=request.app.state.runtime.settings.site_name,
        interval_s=history.interval_s,
        retention_s=round(history.retention_s),
        samples=await history.recent(since),
    )
