"""Reference data: programs, sources (with cone search), obs units, the observatory and its
instruments, observation modes and configurations, data locations and transfer routes.

All of it is written at main (``manage:catalog``) and read from the site's database; a
secondary site forwards writes to main and answers 503 while main is unreachable.
"""

from __future__ import annotations

import asyncio
from datetime import date
from typing import Annotated, Any

import sqlalchemy as sa
from fastapi import APIRouter, Query
from pydantic import BaseModel

from ccat_api import visibility
from ccat_api.api import reference_examples
from ccat_api.api.deps import ReadAccess, RuntimeDep
from ccat_api.api.pages import Limit, Offset
from ccat_api.api.resources import ListFilters, Resource, add_resource
from ccat_api.api.responses import found, read_list, read_one
from ccat_api.api.routing import CheckedRoute
from ccat_api.db.models import Source, Telescope
from ccat_api.errors import InvalidReference, Unprocessable
from ccat_api.schemas.common import PageRead
from ccat_api.schemas.inputs import DateParam, DecimalDigits, IdParam
from ccat_api.schemas.observatory import (
    DataLocationCreate,
    DataLocationFilters,
    DataLocationRead,
    DataLocationUpdate,
    InstrumentFilters,
    InstrumentModuleRead,
    InstrumentRead,
    ModuleConfigurationCreate,
    ModuleConfigurationFilters,
    ModuleConfigurationRead,
    ModuleFilters,
    ObservationConfigurationCreate,
    ObservationConfigurationFilters,
    ObservationConfigurationRead,
    ObservationModeRead,
    ObservatoryRead,
    RouteCreate,
    RouteFilters,
    RouteRead,
    RouteUpdate,
    SiteRead,
    TelescopeRead,
)
from ccat_api.schemas.programs import (
    ObservingProgramCreate,
    ObservingProgramRead,
    ObservingProgramUpdate,
    ObsUnitCreate,
    ObsUnitFilters,
    ObsUnitRead,
    ObsUnitUpdate,
    Search,
    SourceCreate,
    SourceFilters,
    SourceRead,
    SourceUpdate,
    SourceWithDistance,
    SubObservingProgramCreate,
    SubObservingProgramRead,
    SubObservingProgramUpdate,
    SubProgramFilters,
    validate_source,
)

router = APIRouter(route_class=CheckedRoute)

for resource in (
    Resource(
        "/observing_programs", "observing_programs", "observing program",
        ObservingProgramRead, Search, ("id", "short_name", "name"),
        ObservingProgramCreate, ObservingProgramUpdate, deletable=True,
        tags=["programs"], example=reference_examples.OBSERVING_PROGRAM,
    ),
    Resource(
        "/sub_observing_programs", "sub_observing_programs", "sub-program",
        SubObservingProgramRead, SubProgramFilters, ("id", "short_name", "name"),
        SubObservingProgramCreate, SubObservingProgramUpdate, deletable=True,
        tags=["programs"], example=reference_examples.SUB_OBSERVING_PROGRAM,
    ),
    Resource(
        "/obs_units", "obs_units", "obs unit",
        ObsUnitRead, ObsUnitFilters, ("id", "name", "priority"),
        ObsUnitCreate, ObsUnitUpdate, tags=["programs"], example=reference_examples.OBS_UNIT,
    ),
    Resource(
        "/sources", "sources", "source",
        SourceRead, SourceFilters, ("name", "id", "ra_deg", "dec_deg"),
        SourceCreate, SourceUpdate, deletable=True, validate=validate_source,
        tags=["sources"], example=reference_examples.SOURCE,
    ),
    Resource(
        "/sites", "sites", "site", SiteRead, ListFilters, ("id",), tags=["observatory"],
        example=reference_examples.SITE,
    ),
    Resource(
        "/observatories", "observatories", "observatory", ObservatoryRead,
        tags=["observatory"], example=reference_examples.OBSERVATORY,
    ),
    Resource(
        "/telescopes", "telescopes", "telescope", TelescopeRead, tags=["observatory"],
        example=reference_examples.TELESCOPE,
    ),
    Resource(
        "/instruments", "instruments", "instrument",
        InstrumentRead, InstrumentFilters, ("id", "name"), tags=["observatory"],
        example=reference_examples.INSTRUMENT,
    ),
    Resource(
        "/instrument_modules", "instrument_modules", "instrument module",
        InstrumentModuleRead, ModuleFilters, ("id", "name"), tags=["observatory"],
        example=reference_examples.INSTRUMENT_MODULE,
    ),
    Resource(
        "/instrument_module_configurations", "instrument_module_configurations",
        "module configuration", ModuleConfigurationRead, ModuleConfigurationFilters,
        ("id", "name"), ModuleConfigurationCreate, tags=["observatory"],
        example=reference_examples.MODULE_CONFIGURATION,
    ),
    Resource(
        "/observation_modes", "observation_modes", "observation mode",
        ObservationModeRead, tags=["observatory"], example=reference_examples.OBSERVATION_MODE,
    ),
    Resource(
        "/observation_configurations", "observation_configurations",
        "observation configuration", ObservationConfigurationRead,
        ObservationConfigurationFilters, ("id", "name"), ObservationConfigurationCreate,
        tags=["observatory"], example=reference_examples.OBSERVATION_CONFIGURATION,
    ),
    Resource(
        "/api/transfer/locations", "data_locations", "data location",
        DataLocationRead, DataLocationFilters, ("id", "name"),
        DataLocationCreate, DataLocationUpdate, tags=["transfer"],
        example=reference_examples.DATA_LOCATION,
    ),
    Resource(
        "/api/transfer/routes", "data_transfer_routes", "transfer route",
        RouteRead, RouteFilters, ("id", "name"), RouteCreate, RouteUpdate,
        tags=["transfer"], example=reference_examples.ROUTE,
    ),
):  # fmt: skip
    add_resource(router, resource)


# Great-circle distance (degrees) between a fixed source and a position, in SQL.
def _distance_deg(ra_deg: float, dec_deg: float) -> sa.ColumnElement[float]:
    ra, dec = sa.func.radians(Source.ra_deg), sa.func.radians(Source.dec_deg)
    cosine = sa.func.sin(dec) * sa.func.sin(sa.func.radians(dec_deg)) + sa.func.cos(
        dec
    ) * sa.func.cos(sa.func.radians(dec_deg)) * sa.func.cos(ra - sa.func.radians(ra_deg))
    # Rounding can push the cosine a hair past 1 for a source at the very centre.
    clamped = sa.func.greatest(-1.0, sa.func.least(1.0, cosine))
    return sa.func.degrees(sa.func.acos(clamped))


@router.get(
    "/sources/search/cone",
    response_model=PageRead[SourceWithDistance],
    responses=read_list(reference_examples.SOURCE_WITH_DISTANCE),
    summary="Fixed sources within a radius of a position, nearest first, in pages",
    tags=["sources"],
)
async def cone_search(
    runtime: RuntimeDep,
    _: ReadAccess,
    ra_deg: Annotated[float, Query(ge=0, lt=360)],
    dec_deg: Annotated[float, Query(ge=-90, le=90)],
    radius_deg: Annotated[float, Query(gt=0, le=180)],
    limit: Limit = 100,
    offset: Offset = 0,
) -> PageRead[SourceWithDistance]:
    distance = _distance_deg(ra_deg, dec_deg).label("distance_deg")
    within = (Source.source_type == "fixed", distance <= radius_deg)
    query = (
        sa.select(Source, distance)
        .where(*within)
        .order_by(distance, Source.id)
        .limit(limit)
        .offset(offset)
    )
    async with runtime.read_db.connect() as conn:
        total = await conn.scalar(sa.select(sa.func.count()).select_from(Source).where(*within))
        rows = (await conn.execute(query)).all()
    return PageRead[SourceWithDistance](
        items=[SourceWithDistance.model_validate(dict(r._mapping)) for r in rows],
        total=int(total or 0),
        limit=limit,
        offset=offset,
    )


# --- visibility -------------------------------------------------------------------------


class VisibilityRead(BaseModel):
    source_id: int
    site_id: int
    date: date
    step_minutes: int
    samples: list[dict[str, Any]]
    max_altitude_deg: float
    time_of_max: str


class HeatmapRead(BaseModel):
    source_id: int
    site_id: int
    step_minutes: int
    dates: list[str]
    times_utc: list[str]
    altitude_deg: list[list[float]]


StepMinutes = Annotated[
    int, Query(ge=1, le=240, description="Must divide a day evenly"), DecimalDigits
]


async def _visibility_inputs(
    runtime: RuntimeDep, source_id: int, site_id: int | None, step_minutes: int
) -> tuple[visibility.Target, visibility.SiteLocation, int]:
    if (24 * 60) % step_minutes:
        raise Unprocessable("step_minutes: must divide 1440 (a day) evenly", field="step_minutes")
    source = await found(runtime.reader, "sources", source_id, "source")
    if site_id is None:
        async with runtime.read_db.connect() as conn:
            site_id = await conn.scalar(sa.select(sa.func.min(Telescope.site_id)))
        if site_id is None:
            raise Unprocessable("site_id: no telescope is recorded; name a site", field="site_id")
    site = await runtime.references.row("sites", site_id)
    if site is None:
        raise InvalidReference.missing("site_id", "site", site_id)
    location = visibility.SiteLocation(
        site["latitude_deg"], site["longitude_deg"], site["elevation_m"]
    )
    return visibility.Target.of(source), location, site_id


@router.get(
    "/sources/{source_id}/visibility",
    response_model=VisibilityRead,
    responses=read_one(reference_examples.VISIBILITY),
    summary="Altitude and azimuth of a source over one UTC day at a site (the telescope's)",
    tags=["sources"],
)
async def source_visibility(
    source_id: IdParam,
    runtime: RuntimeDep,
    _: ReadAccess,
    day: Annotated[DateParam, Query(alias="date")],
    step_minutes: StepMinutes = 10,
    site_id: Annotated[IdParam | None, Query()] = None,
) -> VisibilityRead:
    target, location, site = await _visibility_inputs(runtime, source_id, site_id, step_minutes)
    result = await asyncio.to_thread(visibility.curve, target, location, day, step_minutes)
    return VisibilityRead(
        source_id=source_id, site_id=site, date=day, step_minutes=step_minutes, **result
    )


@router.get(
    "/sources/{source_id}/visibility/heatmap",
    response_model=HeatmapRead,
    responses=read_one(reference_examples.VISIBILITY_HEATMAP),
    summary="Altitude of a source by date and time of day over a range of at most 62 days",
    tags=["sources"],
)
async def source_visibility_heatmap(
    source_id: IdParam,
    runtime: RuntimeDep,
    _: ReadAccess,
    start: DateParam,
    end: DateParam,
    step_minutes: StepMinutes = 30,
    site_id: Annotated[IdParam | None, Query()] = None,
) -> HeatmapRead:
    if end < start:
        raise Unprocessable("end: before start", field="end")
    if (end - start).days + 1 > visibility.MAX_HEATMAP_DAYS:
        raise Unprocessable(
            f"end: at most {visibility.MAX_HEATMAP_DAYS} days from start", field="end"
        )
    target, location, site = await _visibility_inputs(runtime, source_id, site_id, step_minutes)
    result = await asyncio.to_thread(visibility.heatmap, target, location, start, end, step_minutes)
    return HeatmapRead(source_id=source_id, site_id=site, step_minutes=step_minutes, **result)
