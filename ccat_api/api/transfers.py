"""Data transfer: transfers, their logs and physical copies (critical: buffered at a secondary
site), the overview the control room watches, package lists, long-term-archive transfers and
staging jobs (driven from main)."""

from __future__ import annotations

from typing import Any, Literal

from fastapi import APIRouter
from pydantic import BaseModel

from ccat_api.api import examples
from ccat_api.api.critical import CriticalWrites
from ccat_api.api.deps import (
    ReadAccess,
    ReaderDep,
    RuntimeDep,
    StagingAccess,
    WriteContextDep,
)
from ccat_api.api.pages import Limit, Offset, equal_to, read_page
from ccat_api.api.resources import Listing, Resource, add_listing, add_resource
from ccat_api.api.responses import READ_CODES, documented, found, read_list, read_one
from ccat_api.api.routing import CheckedRoute
from ccat_api.auth.permissions import Permission
from ccat_api.buffering.builder import PreparedWrite
from ccat_api.db.models import RawDataPackageStatus, TransferStatus
from ccat_api.direct import staging
from ccat_api.domain import transfers
from ccat_api.domain.overview import transfer_overview
from ccat_api.runtime import Runtime
from ccat_api.schemas.common import PageRead
from ccat_api.schemas.inputs import IdParam, Uuid
from ccat_api.schemas.raw_data import RawDataPackageRead
from ccat_api.schemas.staging import (
    ArchiveFilters,
    ArchiveTransferCreate,
    ArchiveTransferRead,
    ArchiveTransferUpdate,
    StagingJobCreate,
    StagingJobRead,
    StagingJobUpdate,
    StagingJobWithPackages,
)
from ccat_api.schemas.transfers import (
    Overview,
    PhysicalCopyCreate,
    PhysicalCopyRead,
    PhysicalCopyUpdate,
    TransferCreate,
    TransferLogCreate,
    TransferLogRead,
    TransferRead,
    TransferUpdate,
)

router = APIRouter(route_class=CheckedRoute, tags=["transfer"])
critical = CriticalWrites(router)
PREFIX = "/api/transfer"

# The lists' order: when a record was made or last changed, ``-`` for newest first.
ChangeOrder = Literal["created_at", "-created_at", "updated_at", "-updated_at"]


class TransferFilters(BaseModel):
    status: list[TransferStatus] | None = None
    raw_data_package_id: Uuid | None = None
    route_id: IdParam | None = None


class CopyFilters(BaseModel):
    raw_data_package_id: Uuid | None = None
    data_location_id: IdParam | None = None


class PackageFilters(BaseModel):
    status: list[RawDataPackageStatus] | None = None
    executed_obs_unit_id: Uuid | None = None


class StagingJobFilters(BaseModel):
    status: Literal["pending", "staging", "completed", "failed", "cancelled"] | None = None


# --- transfers (critical) --------------------------------------------------------------------


@critical.post(
    f"{PREFIX}/transfers",
    summary="Start transferring a complete package along a route (critical)",
)
async def start_transfer(body: TransferCreate, ctx: WriteContextDep) -> PreparedWrite:
    return await transfers.start(ctx, body)


@critical.put(
    f"{PREFIX}/transfers/{{transfer_id}}",
    summary="Report a transfer's progress, completion or failure (critical)",
)
async def update_transfer(
    transfer_id: Uuid, body: TransferUpdate, ctx: WriteContextDep
) -> PreparedWrite:
    return await transfers.progress(ctx, transfer_id, body)


@critical.post(
    f"{PREFIX}/transfers/{{transfer_id}}/reset",
    summary="Put a failed transfer back to pending for another attempt (critical)",
    created=False,
)
async def reset_transfer(transfer_id: Uuid, ctx: WriteContextDep) -> PreparedWrite:
    return await transfers.reset(ctx, transfer_id)


@critical.post(
    f"{PREFIX}/transfers/{{transfer_id}}/logs",
    summary="Append a line to a transfer's log (critical)",
)
async def add_log(
    transfer_id: Uuid, body: TransferLogCreate, ctx: WriteContextDep
) -> PreparedWrite:
    return await transfers.log(ctx, transfer_id, body)


add_listing(
    router,
    Listing(
        f"{PREFIX}/transfers", "list_transfers", "data_transfers", TransferRead,
        TransferFilters, ChangeOrder, "-created_at", example=examples.TRANSFER,
        summary="Transfers, filtered by status, package or route (buffered ones included)",
    ),
)  # fmt: skip


@router.get(
    f"{PREFIX}/transfers/{{transfer_id}}",
    response_model=TransferRead,
    responses=read_one(examples.TRANSFER),
    summary="One transfer",
)
async def get_transfer(transfer_id: Uuid, reader: ReaderDep, _: ReadAccess) -> TransferRead:
    row = await found(reader, "data_transfers", transfer_id, "transfer")
    return TransferRead.model_validate(row)


@router.get(
    f"{PREFIX}/transfers/{{transfer_id}}/logs",
    response_model=PageRead[TransferLogRead],
    responses=read_list(examples.TRANSFER_LOG, 404),
    summary="A transfer's log, oldest first (404 for an unknown transfer)",
)
async def transfer_logs(
    transfer_id: Uuid, reader: ReaderDep, _: ReadAccess, limit: Limit = 1000, offset: Offset = 0
) -> PageRead[TransferLogRead]:
    # Merged, so the log of a transfer still in this site's buffer is found too.
    await found(reader, "data_transfers", transfer_id, "transfer")
    where = equal_to(data_transfer_id=transfer_id)
    return await read_page(
        reader,
        TransferLogRead,
        "data_transfer_logs",
        where,
        "logged_at",
        limit=limit,
        offset=offset,
    )


# --- physical copies (critical) --------------------------------------------------------------


@critical.post(
    f"{PREFIX}/copies",
    summary="Record a physical copy of a package at a data location (critical)",
)
async def add_copy(body: PhysicalCopyCreate, ctx: WriteContextDep) -> PreparedWrite:
    return await transfers.add_copy(ctx, body)


@critical.put(
    f"{PREFIX}/copies/{{copy_id}}",
    summary="Mark a physical copy verified, corrupt or deleted (critical)",
)
async def update_copy(
    copy_id: Uuid, body: PhysicalCopyUpdate, ctx: WriteContextDep
) -> PreparedWrite:
    return await transfers.update_copy(ctx, copy_id, body)


add_listing(
    router,
    Listing(
        f"{PREFIX}/copies", "list_copies", "physical_copies", PhysicalCopyRead, CopyFilters,
        ChangeOrder, "created_at", example=examples.PHYSICAL_COPY,
        summary="Physical copies of a package or at a location",
    ),
)  # fmt: skip


@router.get(
    f"{PREFIX}/copies/{{copy_id}}",
    response_model=PhysicalCopyRead,
    responses=read_one(examples.PHYSICAL_COPY),
    summary="One physical copy, including buffered changes",
)
async def get_copy(copy_id: Uuid, reader: ReaderDep, _: ReadAccess) -> PhysicalCopyRead:
    return PhysicalCopyRead.model_validate(
        await found(reader, "physical_copies", copy_id, "physical copy")
    )


# --- what the control room watches -----------------------------------------------------------


@router.get(
    f"{PREFIX}/overview",
    response_model=Overview,
    responses=documented(examples.OVERVIEW, 401, 403, 503),
    summary="Transfer and package counts by status, per route, and bytes in flight",
)
async def overview(reader: ReaderDep, _: ReadAccess) -> Overview:
    return await transfer_overview(reader)


add_listing(
    router,
    Listing(
        f"{PREFIX}/packages", "list_packages", "raw_data_packages", RawDataPackageRead,
        PackageFilters, ChangeOrder, "-created_at", example=examples.RAW_DATA_PACKAGE,
        summary="Raw data packages by status (buffered ones included)",
    ),
)  # fmt: skip


# --- long-term archive (main) ----------------------------------------------------------------


async def _validate_archive(
    runtime: Runtime, changes: dict[str, Any], current: dict[str, Any] | None
) -> None:
    await staging.validate_archive_transfer(runtime.references, changes, current)


add_resource(
    router,
    Resource(
        f"{PREFIX}/archive", "long_term_archive_transfers", "long-term-archive transfer",
        ArchiveTransferRead, ArchiveFilters, ("requested_at", "completed_at"),
        ArchiveTransferCreate, ArchiveTransferUpdate,
        write_permission=Permission.MANAGE_CATALOG, uuid_ids=True, validate=_validate_archive,
        tags=["transfer"], example=examples.ARCHIVE_TRANSFER,
    ),
)  # fmt: skip


# --- staging (main) --------------------------------------------------------------------------


@router.post(
    "/api/staging/jobs",
    status_code=201,
    response_model=StagingJobWithPackages,
    responses=documented(examples.STAGING_JOB_WITH_PACKAGES, 401, 403, 409, 422, 503, status=201),
    summary="Stage archived packages to a processing location (written to main)",
    tags=["staging"],
)
async def create_staging_job(
    body: StagingJobCreate, identity: StagingAccess, runtime: RuntimeDep
) -> StagingJobWithPackages:
    job = await staging.create_job(runtime.main_db, runtime.references, body, identity.login)
    return StagingJobWithPackages.model_validate(job)


@router.put(
    "/api/staging/jobs/{job_id}",
    response_model=StagingJobRead,
    responses=documented(examples.STAGING_JOB, *READ_CODES, 404, 409),
    summary="Move a staging job along: staging, completed, failed, cancelled (main)",
    tags=["staging"],
)
async def update_staging_job(
    job_id: Uuid, body: StagingJobUpdate, _: StagingAccess, runtime: RuntimeDep
) -> StagingJobRead:
    return StagingJobRead.model_validate(await staging.update_job(runtime.main_db, job_id, body))


add_listing(
    router,
    Listing(
        "/api/staging/jobs", "list_staging_jobs", "staging_jobs", StagingJobRead,
        StagingJobFilters, ChangeOrder, "-created_at", example=examples.STAGING_JOB,
        summary="Staging jobs by status (order=created_at|updated_at; newest first by default)",
        tags=["staging"],
    ),
)  # fmt: skip


@router.get(
    "/api/staging/jobs/{job_id}",
    response_model=StagingJobWithPackages,
    responses=read_one(examples.STAGING_JOB_WITH_PACKAGES),
    summary="A staging job with its packages",
    tags=["staging"],
)
async def get_staging_job(
    job_id: Uuid, runtime: RuntimeDep, _: ReadAccess
) -> StagingJobWithPackages:
    return StagingJobWithPackages.model_validate(
        await staging.job_with_packages(runtime.read_db, job_id)
    )
