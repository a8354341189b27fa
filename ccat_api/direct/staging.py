"""Staging jobs (archived packages brought back to a processing location) and long-term-archive
transfers. Both are driven from main and written there directly (never buffered): they concern
data that has already left the observatory.

Staging: pending -> staging -> completed | failed; pending or staging -> cancelled.
Archive transfers: pending -> in_progress -> completed | failed; failed -> pending.
"""

from __future__ import annotations

from typing import Any
from uuid import UUID

import sqlalchemy as sa
from sqlalchemy.exc import IntegrityError

from ccat_api.buffering.envelope import new_uuid7
from ccat_api.db.engines import PrimaryDatabase, ReadDatabase
from ccat_api.db.models import (
    ArchiveStatus,
    LocationRole,
    RawDataPackage,
    RawDataPackageStatus,
    StagingJob,
    StagingJobPackage,
    StagingStatus,
)
from ccat_api.domain.references import ReferenceData
from ccat_api.errors import InvalidReference, NotFound, StateConflict, Unprocessable
from ccat_api.schemas.staging import StagingJobCreate, StagingJobUpdate

STAGING_NEXT = {
    StagingStatus.PENDING: {StagingStatus.STAGING, StagingStatus.CANCELLED, StagingStatus.FAILED},
    StagingStatus.STAGING: {StagingStatus.COMPLETED, StagingStatus.FAILED, StagingStatus.CANCELLED},
    StagingStatus.COMPLETED: set(),
    StagingStatus.FAILED: set(),
    StagingStatus.CANCELLED: set(),
}
ARCHIVE_NEXT = {
    ArchiveStatus.PENDING: {ArchiveStatus.IN_PROGRESS, ArchiveStatus.FAILED},
    ArchiveStatus.IN_PROGRESS: {ArchiveStatus.COMPLETED, ArchiveStatus.FAILED},
    ArchiveStatus.COMPLETED: set(),
    ArchiveStatus.FAILED: {ArchiveStatus.PENDING},
}


async def _location_with_role(
    references: ReferenceData, location_id: int, role: LocationRole, field: str
) -> None:
    location = await references.row("data_locations", location_id)
    if location is None:
        raise InvalidReference.missing(field, "data location", location_id)
    if location["role"] != role:
        raise Unprocessable(
            f"{field}: data location {location['name']!r} is a {location['role']} location,"
            f" not {role.value}",
            field=field,
        )


async def create_job(
    db: PrimaryDatabase, references: ReferenceData, body: StagingJobCreate, requested_by: str
) -> dict[str, Any]:
    await _location_with_role(
        references, body.destination_location_id, LocationRole.PROCESSING,
        "destination_location_id",
    )  # fmt: skip
    job_id = new_uuid7()
    packages = list(dict.fromkeys(body.raw_data_package_ids))
    try:
        async with db.begin() as conn:
            # Locked so a package cannot leave the archive between this check and the insert.
            found = await conn.execute(
                sa.select(RawDataPackage.id, RawDataPackage.status)
                .where(RawDataPackage.id.in_(packages))
                .with_for_update()
            )
            statuses: dict[UUID, str] = {package_id: status for package_id, status in found}
            _require_archived(packages, statuses)
            row = (
                await conn.execute(
                    sa.insert(StagingJob)
                    .values(
                        id=job_id,
                        destination_location_id=body.destination_location_id,
                        status=StagingStatus.PENDING.value,
                        requested_by=requested_by,
                    )
                    .returning(StagingJob)
                )
            ).one()
            await conn.execute(
                sa.insert(StagingJobPackage),
                [{"staging_job_id": job_id, "raw_data_package_id": p} for p in packages],
            )
    except IntegrityError as exc:
        raise InvalidReference(
            "raw_data_package_ids: some packages are not on main (yet); stage them once they"
            " have arrived",
            field="raw_data_package_ids",
        ) from exc
    return {**dict(row._mapping), "raw_data_package_ids": packages}


def _require_archived(packages: list[UUID], statuses: dict[UUID, str]) -> None:
    missing = [str(p) for p in packages if p not in statuses]
    if missing:
        raise InvalidReference(
            f"raw_data_package_ids: packages {', '.join(missing[:5])} are not on main (yet);"
            " stage them once they have arrived",
            field="raw_data_package_ids",
        )
    archived = RawDataPackageStatus.ARCHIVED.value
    unarchived = [f"{p} is {statuses[p]}" for p in packages if statuses[p] != archived]
    if unarchived:
        raise StateConflict(
            "raw_data_package_ids: only archived packages can be staged; "
            + ", ".join(unarchived[:5]),
            field="raw_data_package_ids",
        )


async def update_job(db: PrimaryDatabase, job_id: UUID, body: StagingJobUpdate) -> dict[str, Any]:
    target = StagingStatus(body.status)
    if target is StagingStatus.FAILED and body.error is None:
        raise Unprocessable("error: say why the staging failed", field="error")
    async with db.begin() as conn:
        current = await conn.scalar(
            sa.select(StagingJob.status).where(StagingJob.id == job_id).with_for_update()
        )
        if current is None:
            raise NotFound(f"staging job {job_id} not found")
        if target not in STAGING_NEXT[StagingStatus(current)]:
            raise StateConflict(
                f"status: a {current} staging job cannot become {target.value}", field="status"
            )
        row = (
            await conn.execute(
                sa.update(StagingJob)
                .where(StagingJob.id == job_id)
                .values(status=target.value, error=body.error, updated_at=sa.func.now())
                .returning(StagingJob)
            )
        ).one()
    return dict(row._mapping)


async def job_with_packages(db: ReadDatabase, job_id: UUID) -> dict[str, Any]:
    async with db.connect() as conn:
        job = (
            await conn.execute(sa.select(StagingJob).where(StagingJob.id == job_id))
        ).one_or_none()
        if job is None:
            raise NotFound(f"staging job {job_id} not found")
        packages = await conn.scalars(
            sa.select(StagingJobPackage.raw_data_package_id)
            .where(StagingJobPackage.staging_job_id == job_id)
            .order_by(StagingJobPackage.raw_data_package_id)
        )
        return {**dict(job._mapping), "raw_data_package_ids": list(packages)}


async def validate_archive_transfer(
    references: ReferenceData, changes: dict[str, Any], current: dict[str, Any] | None
) -> None:
    """A new archive transfer targets a long-term archive and starts pending; a change
    follows the state machine and a failure says why."""
    if current is None:
        await _location_with_role(
            references, changes["data_location_id"], LocationRole.LONG_TERM_ARCHIVE,
            "data_location_id",
        )  # fmt: skip
        changes["status"] = ArchiveStatus.PENDING.value
        return
    target = ArchiveStatus(changes["status"])
    if target not in ARCHIVE_NEXT[ArchiveStatus(current["status"])]:
        raise StateConflict(
            f"status: a {current['status']} archive transfer cannot become {target.value}",
            field="status",
        )
    if target is ArchiveStatus.FAILED and not changes.get("error"):
        raise Unprocessable("error: say why the archive transfer failed", field="error")
    if target is ArchiveStatus.PENDING:
        # A retry starts clean: the failed attempt's error no longer describes it.
        changes["error"] = None
    if target is ArchiveStatus.COMPLETED:
        changes["completed_at"] = sa.func.now()
