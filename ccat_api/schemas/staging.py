"""Staging jobs (archived packages brought back to a processing location) and long-term
archive transfers: what their routes take and answer."""

from __future__ import annotations

from datetime import datetime
from typing import Literal
from uuid import UUID

from pydantic import BaseModel, Field

from ccat_api.schemas.common import ReadModel
from ccat_api.schemas.inputs import IntId, Message, Strict, Uuid, examples


class StagingJobCreate(Strict):
    model_config = examples(
        {
            "raw_data_package_ids": ["019a4c2e-7f00-7000-8000-000000000003"],
            "destination_location_id": 5,
        }
    )

    raw_data_package_ids: list[Uuid] = Field(min_length=1, max_length=1000)
    destination_location_id: IntId


class StagingJobUpdate(Strict):
    model_config = examples({"status": "staging"})

    status: Literal["staging", "completed", "failed", "cancelled"]
    error: Message | None = None


class StagingJobRead(ReadModel):
    id: UUID
    destination_location_id: int
    status: str
    requested_by: str
    error: str | None
    created_at: datetime
    updated_at: datetime


class StagingJobWithPackages(StagingJobRead):
    raw_data_package_ids: list[UUID]


class ArchiveTransferCreate(Strict):
    model_config = examples(
        {"raw_data_package_id": "019a4c2e-7f00-7000-8000-000000000003", "data_location_id": 3}
    )

    raw_data_package_id: Uuid
    data_location_id: IntId


class ArchiveTransferUpdate(Strict):
    model_config = examples({"status": "in_progress"})

    status: Literal["pending", "in_progress", "completed", "failed"]
    error: Message | None = None


class ArchiveTransferRead(ReadModel):
    id: UUID
    raw_data_package_id: UUID
    data_location_id: int
    status: str
    error: str | None
    requested_at: datetime
    completed_at: datetime | None


class ArchiveFilters(BaseModel):
    status: Literal["pending", "in_progress", "completed", "failed"] | None = None
    raw_data_package_id: Uuid | None = None
