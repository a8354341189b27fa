"""Raw data files and packages: every write is critical; reads merge the overlay."""

from __future__ import annotations

from typing import Annotated, Literal

from fastapi import APIRouter, Query

from ccat_api.api import examples
from ccat_api.api.critical import CriticalWrites
from ccat_api.api.deps import ReadAccess, ReaderDep, WriteContextDep
from ccat_api.api.pages import Limit, Offset, equal_to, read_page
from ccat_api.api.responses import found, read_list, read_one
from ccat_api.api.routing import CheckedRoute
from ccat_api.buffering.builder import PreparedWrite
from ccat_api.buffering.query import Eq, OrderBy
from ccat_api.domain import raw_data
from ccat_api.errors import Unprocessable
from ccat_api.schemas.common import PageRead
from ccat_api.schemas.inputs import Uuid
from ccat_api.schemas.raw_data import (
    RawDataFileBulkCreate,
    RawDataFileCreate,
    RawDataFileRead,
    RawDataPackageCreate,
    RawDataPackageFinalize,
    RawDataPackageWithFiles,
)

router = APIRouter(route_class=CheckedRoute, tags=["raw data"])
critical = CriticalWrites(router)


@critical.post("/raw_data_files", summary="Register one raw data file (critical)")
async def create_raw_data_file(body: RawDataFileCreate, ctx: WriteContextDep) -> PreparedWrite:
    return await raw_data.create_file(ctx, body)


@critical.post(
    "/raw_data_files/bulk",
    summary="Register up to 1000 raw data files in one transaction (critical)",
)
async def create_raw_data_files(body: RawDataFileBulkCreate, ctx: WriteContextDep) -> PreparedWrite:
    return await raw_data.create_files(ctx, body)


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
    limit: Limit = 100,
    offset: Offset = 0,
) -> PageRead[RawDataFileRead]:
    where = equal_to(
        executed_obs_unit_id=executed_obs_unit_id, raw_data_package_id=raw_data_package_id
    )
    if not where:
        raise Unprocessable(
            "executed_obs_unit_id: filter by executed_obs_unit_id or raw_data_package_id",
            field="executed_obs_unit_id",
        )
    return await read_page(
        reader, RawDataFileRead, "raw_data_files", where, order, limit=limit, offset=offset
    )


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


@critical.post(
    "/raw_data_package",
    summary="Create a raw data package, packing existing files and/or new ones (critical)",
)
async def create_raw_data_package(
    body: RawDataPackageCreate, ctx: WriteContextDep
) -> PreparedWrite:
    return await raw_data.create_package(ctx, body)


@critical.put(
    "/raw_data_package/{package_id}/finalize",
    summary="Mark a building package complete, with its final file count and size (critical)",
)
async def finalize_raw_data_package(
    package_id: Uuid, body: RawDataPackageFinalize, ctx: WriteContextDep
) -> PreparedWrite:
    return await raw_data.finalize_package(ctx, package_id, body)


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
