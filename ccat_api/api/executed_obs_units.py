"""Executed obs units: start and finish are critical writes; reads merge the overlay."""

from __future__ import annotations

from typing import Literal
from uuid import UUID

from fastapi import APIRouter
from pydantic import BaseModel

from ccat_api.api import examples
from ccat_api.api.critical import CriticalWrites
from ccat_api.api.deps import ReadAccess, ReaderDep, WriteContextDep
from ccat_api.api.resources import Listing, add_listing
from ccat_api.api.responses import found, read_one
from ccat_api.api.routing import CheckedRoute
from ccat_api.buffering.builder import PreparedWrite
from ccat_api.buffering.query import Eq, OrderBy
from ccat_api.domain import observations
from ccat_api.schemas.inputs import IdParam, Uuid
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
critical = CriticalWrites(router)


class ExecutedObsUnitFilters(BaseModel):
    obs_unit_id: IdParam | None = None
    status: Literal["running", "success", "failed", "interrupted"] | None = None


@critical.post(
    "/start", summary="Start an executed obs unit (critical: buffered at a secondary site)"
)
async def start_executed_obs_unit(
    body: ExecutedObsUnitStart, ctx: WriteContextDep
) -> PreparedWrite:
    return await observations.start(ctx, body)


@critical.put(
    "/{executed_obs_unit_id}/finish", summary="Finish a running executed obs unit (critical)"
)
async def finish_executed_obs_unit(
    executed_obs_unit_id: Uuid, body: ExecutedObsUnitFinish, ctx: WriteContextDep
) -> PreparedWrite:
    return await observations.finish(ctx, executed_obs_unit_id, body)


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


add_listing(
    router,
    Listing(
        "", "list_executed_obs_units", "executed_obs_units", ExecutedObsUnitRead,
        ExecutedObsUnitFilters, Literal["start_time", "-start_time", "created_at", "-created_at"],
        "-start_time", example=examples.EXECUTED_OBS_UNIT, max_offset=100_000,
        summary="Executed obs units, filtered and paginated over replica and buffer alike",
    ),
)  # fmt: skip


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
