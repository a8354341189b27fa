"""Data transfers, their logs and physical copies, and the transfer overview."""

from __future__ import annotations

from datetime import datetime
from typing import Literal
from uuid import UUID

from pydantic import BaseModel, Field

from ccat_api.schemas.common import ReadModel
from ccat_api.schemas.inputs import (
    Checksum,
    IntId,
    Message,
    Path,
    Strict,
    Timestamp,
    Uuid,
    examples,
)


class TransferCreate(Strict):
    raw_data_package_id: Uuid
    route_id: IntId

    model_config = examples(
        {"raw_data_package_id": "019a4c2e-7f00-7000-8000-000000000003", "route_id": 1}
    )


class TransferUpdate(Strict):
    model_config = examples({"status": "transferring", "bytes_transferred": 1048576})

    status: Literal["transferring", "completed", "failed"]
    bytes_transferred: int | None = Field(default=None, ge=0, le=2**62)
    error: Message | None = None
    at: Timestamp | None = Field(default=None, description="When it happened; default now")


class TransferLogCreate(Strict):
    model_config = examples({"level": "info", "message": "bbcp started with 8 streams"})

    level: Literal["debug", "info", "warning", "error"] = "info"
    message: Message
    at: Timestamp | None = None


class PhysicalCopyCreate(Strict):
    model_config = examples(
        {
            "raw_data_package_id": "019a4c2e-7f00-7000-8000-000000000003",
            "data_location_id": 2,
            "path": "/data/buffer/pkg-2026-11-22-0001",
        }
    )

    raw_data_package_id: Uuid
    data_location_id: IntId
    path: Path
    checksum: Checksum | None = None


class PhysicalCopyUpdate(Strict):
    model_config = examples({"status": "verified", "checksum": "md5:0123456789abcdef"})

    status: Literal["present", "verified", "deleted", "corrupt"]
    checksum: Checksum | None = None


class TransferRead(ReadModel):
    id: UUID
    raw_data_package_id: UUID
    route_id: int
    status: str
    bytes_total: int
    bytes_transferred: int
    attempts: int
    error: str | None
    started_at: datetime | None
    finished_at: datetime | None
    created_at: datetime
    updated_at: datetime


class TransferLogRead(ReadModel):
    id: UUID
    data_transfer_id: UUID
    level: str
    message: str
    logged_at: datetime


class PhysicalCopyRead(ReadModel):
    id: UUID
    raw_data_package_id: UUID
    data_location_id: int
    path: str
    status: str
    checksum: str | None
    created_at: datetime
    updated_at: datetime


class RouteCounts(BaseModel):
    route_id: int
    by_status: dict[str, int]


class Overview(BaseModel):
    transfers_by_status: dict[str, int]
    packages_by_status: dict[str, int]
    routes: list[RouteCounts]
    bytes_in_flight: int
    failed_transfers: int
