"""Raw data files and packages: every write is critical; reads merge the overlay."""

from __future__ import annotations

from typing import Annotated, Literal

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
from ccat_api.domain import raw_data
from ccat_api.errors import Unprocessable
from ccat_api.schemas.common import PageRead
from ccat_api.schemas.inputs import DecimalDigits, Uuid
from ccat_api.schemas.raw_data import (
    RawDataFileBulkCreate,
    RawDataFileCreate,
    RawDataFileRead,
    RawDataPackageCreate,
    RawDataPackageFinalize,
    RawDataPackageWithFiles,
)

router = APIRouter(route_class=CheckedRoute, tags=["raw data"])


@router.post(
    "/raw_data_files",
    **CRITICAL_CREATED,
    summary="Register one raw data file (critical)",
)
async def create_raw_data_file(body: RawDataFileCreate, ctx: WriteContextDep) -> Response:
    prepared = await raw_data.create_file(ctx, body)
    return answered(await ctx.gateway.submit(prepared, ctx.claim, status_code=201))


@router.post(
    "/raw_data_files/bulk",
    **CRITICAL_CREATED,
    summary="Register up to 1000 raw data files in one transaction (critical)",
)
async def create_raw_data_files(body: RawDataFileBulkCreate, ctx: WriteContextDep) -> Response:
    prepared = await raw_data.create_files(ctx, body)
    return answered(await ctx.gateway.submit(prepared, ctx.claim, status_code=201))


@router.get(
    "/raw_data_files",
    response_model=PageRead[RawDataFileRead],
    responses=read_list(examples.RAW_DATA_FILE),
    summary="Raw data files of an executed obs unit or a package",
    description="Name `executed_obs_unit_id` or `raw_data_package_id` (422 otherwise): raw"
    " data files are the largest table, and an unfiltered page would count all of it and, at"
    " a secondary site, fold every buffered file into each request.",
)
async def list_raw_data_files(
    reader: ReaderDep,
    _: ReadAccess,
    executed_obs_unit_id: Uuid | None = None,
    raw_data_package_id: Uuid | None = None,
    order: Annotated[
        Literal["created_at", "-created_at", "relative_path", "-relative_path"], Query()
    ] = "created_at",
    limit: Annotated[int, Query(ge=1, le=1000), DecimalDigits] = 100,
    offset: Annotated[int, Query(ge=0, le=1_000_000), DecimalDigits] = 0,
) -> PageRead[RawDataFileRead]:
    where: list[Condition] = []
    if executed_obs_unit_id is not None:
        where.append(Eq("executed_obs_unit_id", executed_obs_unit_id))
    if raw_data_package_id is not None:
        where.append(Eq("raw_data_package_id", raw_data_package_id))
    if not where:
        raise Unprocessable(
            "executed_obs_unit_id: filter by executed_obs_unit_id or raw_data_package_id",
            field="executed_obs_unit_id",
        )
    page = await reader.page(
        "raw_data_files",
        where,
        [OrderBy(order.lstrip("-"), descending=order.startswith("-"))],
        limit=limit,
        offset=offset,
    )
    return page_of(RawDataFileRead, page)


@router.get(
    "/raw_data_files/{file_id}",
    response_model=RawDataFileRead,
    responses=read_one(examples.RAW_DATA_FILE),
    summary="One raw data file, including buffered changes",
)
async def get_raw_data_file(file_id: Uuid, reader: ReaderDep, _: ReadAccess) -> RawDataFileRead:
    return RawDataFileRead.model_validate(
        await found(reader, "raw_data_files", file_id, "raw data file")
    )


@router.post(
    "/raw_data_package",
    **CRITICAL_CREATED,
    summary="Create a raw data package, packing existing files and/or new ones (critical)",
)
async def create_raw_data_package(body: RawDataPackageCreate, ctx: WriteContextDep) -> Response:
    prepared = await raw_data.create_package(ctx, body)
    return answered(await ctx.gateway.submit(prepared, ctx.claim, status_code=201))


@router.put(
    "/raw_data_package/{package_id}/finalize",
    **CRITICAL_CHANGED,
    summary="Mark a building package complete, with its final file count and size (critical)",
)
async def finalize_raw_data_package(
    package_id: Uuid,
    body: RawDataPackageFinalize,
    ctx: WriteContextDep,
) -> Response:
    prepared = await raw_data.finalize_package(ctx, package_id, body)
    return answered(await ctx.gateway.submit(prepared, ctx.claim, status_code=200))


@router.get(
    "/raw_data_package/{package_id}",
    response_model=RawDataPackageWithFiles,
    responses=read_one(examples.RAW_DATA_PACKAGE_WITH_FILES),
    summary="A raw data package with its files",
)
async def get_raw_data_package(
    package_id: Uuid, reader: ReaderDep, _: ReadAccess
) -> RawDataPackageWithFiles:
    package = await found(reader, "raw_data_packages", package_id, "raw data package")
    files = await reader.page(
        "raw_data_files",
        [Eq("raw_data_package_id", package_id)],
        [OrderBy("relative_path")],
        limit=raw_data.MAX_FILES_PER_PACKAGE,
    )
    return RawDataPackageWithFiles.model_validate(
        {**package, "files": [RawDataFileRead.model_validate(f) for f in files.items]}
    )
