"""Moving raw data: transfers of packages along routes, their logs, and the physical copies
that result. These are critical writes: the observatory's transfer service records them
while the WAN may be down, so they are buffered at a secondary site like observations.

State machine of a transfer: pending -> transferring -> completed | failed (a short one may
go from pending straight to either); failed -> pending (reset, counting an attempt).

What a transfer does to its package (building -> complete -> transferring -> archived, or
failed): starting one marks a complete or failed package ``transferring``; completing one
records a physical copy at the destination, and a copy in a long-term archive marks the
package ``archived``; the last active transfer of a transferring package failing marks it
``failed``, and resetting that transfer marks it ``transferring`` again. An archived package
may be sent on (to processing, say) and stays archived.
"""

from __future__ import annotations

from typing import Any
from uuid import UUID

from ccat_api.buffering.builder import PreparedWrite, TransactionBuilder
from ccat_api.buffering.query import Eq, OneOf
from ccat_api.db.models import (
    CopyStatus,
    LocationRole,
    RawDataPackageStatus,
    TransferStatus,
)
from ccat_api.domain.context import WriteContext
from ccat_api.errors import StateConflict, Unprocessable
from ccat_api.schemas.transfers import (
    PhysicalCopyCreate,
    PhysicalCopyUpdate,
    TransferCreate,
    TransferLogCreate,
    TransferUpdate,
)

TRANSFERS = "data_transfers"
LOGS = "data_transfer_logs"
COPIES = "physical_copies"
PACKAGES = "raw_data_packages"

# Which status a transfer may move to from each status (reset is its own operation).
NEXT_STATUS = {
    TransferStatus.PENDING: {
        TransferStatus.TRANSFERRING,
        TransferStatus.COMPLETED,
        TransferStatus.FAILED,
    },
    TransferStatus.TRANSFERRING: {
        TransferStatus.TRANSFERRING,
        TransferStatus.COMPLETED,
        TransferStatus.FAILED,
    },
    TransferStatus.COMPLETED: set(),
    TransferStatus.FAILED: set(),
}
ACTIVE = (TransferStatus.PENDING.value, TransferStatus.TRANSFERRING.value)
# Package states a transfer may start from.
SENDABLE = (
    RawDataPackageStatus.COMPLETE,
    RawDataPackageStatus.TRANSFERRING,
    RawDataPackageStatus.FAILED,
    RawDataPackageStatus.ARCHIVED,
)


async def start(ctx: WriteContext, body: TransferCreate) -> PreparedWrite:
    package = await ctx.referenced(
        PACKAGES, body.raw_data_package_id, "raw_data_package_id", "raw data package"
    )
    if package["status"] not in SENDABLE:
        raise StateConflict(
            f"raw_data_package_id: package is {package['status']}; finalize it first",
            field="raw_data_package_id",
        )
    route = await ctx.reference_row("data_transfer_routes", body.route_id, "route_id", "route")
    if not route["active"]:
        raise StateConflict(f"route_id: route {route['name']!r} is inactive", field="route_id")
    builder = ctx.builder()
    now = builder.now
    transfer_id = builder.insert(
        TRANSFERS,
        {
            "raw_data_package_id": body.raw_data_package_id,
            "route_id": body.route_id,
            "status": TransferStatus.PENDING.value,
            "bytes_total": int(package["total_size_bytes"]),
            "bytes_transferred": 0,
            "attempts": 1,
            "error": None,
            "started_at": None,
            "finished_at": None,
            "created_at": now,
            "updated_at": now,
        },
    )
    if package["status"] in (RawDataPackageStatus.COMPLETE, RawDataPackageStatus.FAILED):
        _set_package_status(builder, package, RawDataPackageStatus.TRANSFERRING)
    return PreparedWrite(builder.build(), transfer_id, [transfer_id])


def _set_package_status(
    builder: TransactionBuilder, package: dict[str, Any], status: RawDataPackageStatus
) -> None:
    builder.update(
        PACKAGES, package["id"], {"status": status.value, "updated_at": builder.now}, package
    )


async def _others_active(ctx: WriteContext, transfer: dict[str, Any]) -> bool:
    """Whether another transfer of the same package is still pending or transferring."""
    active = await ctx.reader.page(
        TRANSFERS,
        [Eq("raw_data_package_id", transfer["raw_data_package_id"]), OneOf("status", ACTIVE)],
        limit=2,
    )
    return any(t["id"] != transfer["id"] for t in active.items)


async def progress(ctx: WriteContext, transfer_id: UUID, body: TransferUpdate) -> PreparedWrite:
    transfer = await ctx.existing(TRANSFERS, transfer_id, "transfer")
    current, target = TransferStatus(transfer["status"]), TransferStatus(body.status)
    if target not in NEXT_STATUS[current]:
        raise StateConflict(
            f"status: a {current.value} transfer cannot become {target.value}", field="status"
        )
    if target is TransferStatus.FAILED and body.error is None:
        raise Unprocessable("error: say why the transfer failed", field="error")
    builder = ctx.builder()
    at = body.at or builder.now
    changes: dict[str, Any] = {"status": target.value, "updated_at": builder.now}
    if transfer["started_at"] is None:
        changes["started_at"] = at
    if body.bytes_transferred is not None:
        if body.bytes_transferred > transfer["bytes_total"]:
            raise Unprocessable(
                f"bytes_transferred: more than the package's {transfer['bytes_total']} bytes",
                field="bytes_transferred",
            )
        changes["bytes_transferred"] = body.bytes_transferred
    if target in (TransferStatus.COMPLETED, TransferStatus.FAILED):
        changes["finished_at"] = at
        changes["error"] = body.error
    if target is TransferStatus.COMPLETED:
        changes["bytes_transferred"] = transfer["bytes_total"]
    builder.update(TRANSFERS, transfer_id, changes, transfer)
    created = []
    if target is TransferStatus.COMPLETED:
        created = await _record_arrival(ctx, builder, transfer)
    elif target is TransferStatus.FAILED:
        package = await ctx.existing(PACKAGES, transfer["raw_data_package_id"], "raw data package")
        if package["status"] == RawDataPackageStatus.TRANSFERRING and not await _others_active(
            ctx, transfer
        ):
            _set_package_status(builder, package, RawDataPackageStatus.FAILED)
    return PreparedWrite(builder.build(), transfer_id, created)


async def _record_arrival(
    ctx: WriteContext, builder: TransactionBuilder, transfer: dict[str, Any]
) -> list[UUID]:
    route = await ctx.reference_row(
        "data_transfer_routes", transfer["route_id"], "route_id", "route"
    )
    destination = await ctx.reference_row(
        "data_locations", route["destination_location_id"], "route_id", "data location"
    )
    package = await ctx.existing(PACKAGES, transfer["raw_data_package_id"], "raw data package")
    copy_id = builder.insert(
        COPIES,
        {
            "raw_data_package_id": transfer["raw_data_package_id"],
            "data_location_id": destination["id"],
            "path": f"{destination['base_uri'].rstrip('/')}/{package['name']}",
            "status": CopyStatus.PRESENT.value,
            "checksum": package["checksum"],
            "created_at": builder.now,
            "updated_at": builder.now,
        },
    )
    if destination["role"] == LocationRole.LONG_TERM_ARCHIVE:
        _set_package_status(builder, package, RawDataPackageStatus.ARCHIVED)
    return [copy_id]


async def reset(ctx: WriteContext, transfer_id: UUID) -> PreparedWrite:
    transfer = await ctx.existing(TRANSFERS, transfer_id, "transfer")
    if transfer["status"] != TransferStatus.FAILED:
        raise StateConflict(
            f"status: only a failed transfer can be reset; this one is {transfer['status']}",
            field="status",
        )
    builder = ctx.builder()
    builder.update(
        TRANSFERS,
        transfer_id,
        {
            "status": TransferStatus.PENDING.value,
            "attempts": int(transfer["attempts"]) + 1,
            "bytes_transferred": 0,
            "error": None,
            "started_at": None,
            "finished_at": None,
            "updated_at": builder.now,
        },
        transfer,
    )
    package = await ctx.existing(PACKAGES, transfer["raw_data_package_id"], "raw data package")
    if package["status"] == RawDataPackageStatus.FAILED:
        _set_package_status(builder, package, RawDataPackageStatus.TRANSFERRING)
    return PreparedWrite(builder.build(), transfer_id, [])


async def log(ctx: WriteContext, transfer_id: UUID, body: TransferLogCreate) -> PreparedWrite:
    await ctx.existing(TRANSFERS, transfer_id, "transfer")
    builder = ctx.builder()
    log_id = builder.insert(
        LOGS,
        {
            "data_transfer_id": transfer_id,
            "level": body.level,
            "message": body.message,
            "logged_at": body.at or builder.now,
        },
    )
    return PreparedWrite(builder.build(), log_id, [log_id])


async def add_copy(ctx: WriteContext, body: PhysicalCopyCreate) -> PreparedWrite:
    await ctx.referenced(
        PACKAGES, body.raw_data_package_id, "raw_data_package_id", "raw data package"
    )
    await ctx.reference_row(
        "data_locations", body.data_location_id, "data_location_id", "data location"
    )
    builder = ctx.builder()
    copy_id = builder.insert(
        COPIES,
        {
            "raw_data_package_id": body.raw_data_package_id,
            "data_location_id": body.data_location_id,
            "path": body.path,
            "status": CopyStatus.PRESENT.value,
            "checksum": body.checksum,
            "created_at": builder.now,
            "updated_at": builder.now,
        },
    )
    return PreparedWrite(builder.build(), copy_id, [copy_id])


async def update_copy(ctx: WriteContext, copy_id: UUID, body: PhysicalCopyUpdate) -> PreparedWrite:
    current = await ctx.existing(COPIES, copy_id, "physical copy")
    if current["status"] == CopyStatus.DELETED and body.status != CopyStatus.DELETED.value:
        raise StateConflict("status: a deleted copy stays deleted", field="status")
    builder = ctx.builder()
    changes: dict[str, Any] = {"status": body.status, "updated_at": builder.now}
    if body.checksum is not None:
        changes["checksum"] = body.checksum
    builder.update(COPIES, copy_id, changes, current)
    return PreparedWrite(builder.build(), copy_id, [])
