"""Health (no token), buffer statistics and what this site is."""

from __future__ import annotations

from dataclasses import asdict

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse

from ccat_api.api import examples
from ccat_api.api.deps import PUBLIC, BufferReadAccess, LedgerDep, ReadAccess, RuntimeDep
from ccat_api.api.responses import documented
from ccat_api.api.routing import CheckedRoute
from ccat_api.buffering.envelope import SCHEMA_VERSION
from ccat_api.db.migrate import current_head
from ccat_api.db.revisions import RevisionCheck
from ccat_api.live.models import BufferStats, SiteInfo

router = APIRouter(route_class=CheckedRoute, tags=["site"])


@router.get(
    "/health",
    dependencies=[PUBLIC],
    summary="Reachability of main, replica and Redis; buffer depth and age; replica lag",
    description="200 while this site takes writes, with `status: degraded` and the reasons"
    " when a worker loop crashed lately but was restarted; 503 when it cannot take writes.",
    responses={
        **documented(examples.HEALTH),
        503: {
            "description": "This site cannot take writes now (the same report, degraded)",
            "content": {"application/json": {"example": examples.HEALTH_DEGRADED}},
        },
    },
)
async def health(request: Request) -> JSONResponse:
    ok, report = await request.app.state.health.report()
    return JSONResponse(report, status_code=200 if ok else 503)


@router.get(
    "/buffer-stats",
    response_model=BufferStats,
    responses=documented(examples.BUFFER_STATS, 401, 403, 404, 503),
    summary="Buffer depth, age, dead letters (404 at the main site, which keeps no buffer)",
)
async def buffer_stats(_: BufferReadAccess, ledger: LedgerDep) -> BufferStats:
    return BufferStats.model_validate(asdict(await ledger.stats()))


@router.get(
    "/api/site/info",
    response_model=SiteInfo,
    responses=documented(examples.SITE_INFO, 401, 403, 503),
    summary="What this site is and does",
)
async def site_info(request: Request, runtime: RuntimeDep, _: ReadAccess) -> SiteInfo:
    settings = runtime.settings
    # As read at start-up; None when the database did not answer then.
    revision: RevisionCheck | None = request.app.state.revision
    return SiteInfo(
        site_name=settings.site_name,
        site_type=settings.site_type.value,
        critical_writes="buffered" if settings.is_secondary else "applied directly",
        reads="local replica merged with buffer" if settings.is_secondary else "main database",
        schema_revision=current_head(),
        database_revision=revision.database_revision if revision else None,
        envelope_version=SCHEMA_VERSION,
        schema_check=revision.describe() if revision else "database revision not read at start-up",
        processor_in_gateway=settings.run_processor and settings.is_secondary,
    )
