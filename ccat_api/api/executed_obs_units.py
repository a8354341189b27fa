"""Executed obs units: start and finish are critical writes; reads merge the overlay."""

from __future__ import annotations

from typing import Annotated, Literal
from uuid import UUID

from fastapi import APIRouter, Query
from fastapi.responses import Response

from ccat_api.api import examples
from ccat_api.api.deps import ReadAccess, ReaderDep, WriteContextDep
from ccat_api.api.responses import (
    CRITICAL_CHANGED,
    CRITICAL_CREATED,
    answered,
    found,
    page_of,
    read_list,
    read_one,
)
from ccat_api.api.routing import CheckedRoute
from ccat_api.buffering.reads import Condition, Eq, OrderBy
from ccat_api.domain import observations
from ccat_api.schemas.common import PageRead
from ccat_api.schemas.inputs import DecimalDigits, IdParam, Uuid
from ccat_api.schemas.observations import (
    ExecutedObsUnitDetails,
    ExecutedObsUnitFinish,
    ExecutedObsUnitRead,
    ExecutedObsUnitStart,
    PackageDetails,
)
from ccat_api.schemas.raw_data import RawDataFileRead
from ccat_api.schemas.transfers import TransferRead

router = APIRouter(
    route_class=CheckedRoute, prefix="/executed_obs_units", tags=["executed obs units"]
)
MAX_FILES_PER_UNIT = 100_000


@router.post(
    "/start",
    **CRITICAL_CREATED,
    summary="Start an executed obs unit (critical: buffered at a secondary site)",
)
async def start_executed_obs_unit(body: ExecutedObsUnitStart, ctx: WriteContextDep) -> Response:
    prepared = await observations.start(ctx, body)
    return answered(await ctx.gateway.submit(prepared, ctx.claim, status_code=201))


@router.put(
    "/{executed_obs_unit_id}/finish",
    **CRITICAL_CHANGED,
    summary="Finish a running executed obs unit (critical)",
)
async def finish_executed_obs_unit(
    executed_obs_unit_id: Uuid,
    body: ExecutedObsUnitFinish,
    ctx: WriteContextDep,
) -> Response:
    prepared = await observations.finish(ctx, executed_obs_unit_id, body)
    return answered(await ctx.gateway.submit(prepared, ctx.claim, status_code=200))


@router.get(
    "/{executed_obs_unit_id}",
    response_model=ExecutedObsUnitRead,
    responses=read_one(examples.EXECUTED_OBS_UNIT),
    summary="One executed obs unit, including buffered changes",
)
async def get_executed_obs_unit(
    executed_obs_unit_id: Uuid, reader: ReaderDep, _: ReadAccess
) -> ExecutedObsUnitRead:
    return ExecutedObsUnitRead.model_validate(
        await found(reader, "executed_obs_units", executed_obs_unit_id, "executed obs unit")
    )


@router.get(
    "",
    response_model=PageRead[ExecutedObsUnitRead],
    responses=read_list(examples.EXECUTED_OBS_UNIT),
    summary="Executed obs units, filtered and paginated over replica and buffer alike",
)
async def list_executed_obs_units(
    reader: ReaderDep,
    _: ReadAccess,
    obs_unit_id: Annotated[IdParam | None, Query()] = None,
    status: Annotated[
        Literal["running", "success", "failed", "interrupted"] | None, Query()
    ] = None,
    order: Annotated[
        Literal["start_time", "-start_time", "created_at", "-created_at"], Query()
    ] = "-start_time",
    limit: Annotated[int, Query(ge=1, le=1000), DecimalDigits] = 100,
    offset: Annotated[int, Query(ge=0, le=100_000), DecimalDigits] = 0,
) -> PageRead[ExecutedObsUnitRead]:
    where: list[Condition] = []
    if obs_unit_id is not None:
        where.append(Eq("obs_unit_id", obs_unit_id))
    if status is not None:
        where.append(Eq("status", status))
    page = await reader.page(
        "executed_obs_units",
        where,
        [OrderBy(order.lstrip("-"), descending=order.startswith("-"))],
        limit=limit,
        offset=offset,
    )
    return page_of(ExecutedObsUnitRead, page)


@router.get(
    "/{executed_obs_unit_id}/details",
    response_model=ExecutedObsUnitDetails,
    responses=read_one(examples.EXECUTED_OBS_UNIT_DETAILS),
    summary="An executed obs unit with its packages, their files and transfers (all merged)",
)
async def executed_obs_unit_details(
    executed_obs_unit_id: Uuid, reader: ReaderDep, _: ReadAccess
) -> ExecutedObsUnitDetails:
    unit = await found(reader, "executed_obs_units", executed_obs_unit_id, "executed obs unit")
    mine = [Eq("executed_obs_unit_id", executed_obs_unit_id)]
    packages = await reader.page("raw_data_packages", mine, [OrderBy("created_at")], limit=10_000)
    files = await reader.page(
        "raw_data_files", mine, [OrderBy("relative_path")], limit=MAX_FILES_PER_UNIT
    )
    by_package: dict[UUID | None, list[RawDataFileRead]] = {}
    for f in files.items:
        by_package.setdefault(f["raw_data_package_id"], []).append(
            RawDataFileRead.model_validate(f)
        )
    details = []
    for package in packages.items:
        moves = await reader.page(
            "data_transfers",
            [Eq("raw_data_package_id", package["id"])],
            [OrderBy("created_at")],
            limit=1000,
        )
        details.append(
            PackageDetails.model_validate(
                {
                    **package,
                    "files": by_package.pop(package["id"], []),
                    "transfers": [TransferRead.model_validate(t) for t in moves.items],
                }
            )
        )
    return ExecutedObsUnitDetails.model_validate(
        {**unit, "packages": details, "unpackaged_files": by_package.pop(None, [])}
    )
