"""Executed obs units: their start and finish, and one with everything it produced."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any, Literal
from uuid import UUID

from pydantic import Field

from ccat_api.schemas.common import ReadModel
from ccat_api.schemas.inputs import (
    Conditions,
    IntId,
    Strict,
    Timestamp,
    examples,
)
from ccat_api.schemas.raw_data import RawDataFileRead, RawDataPackageRead
from ccat_api.schemas.transfers import TransferRead

# What the start and the finish of a unit may record of its conditions (one set of bounds).
PwvMm = Annotated[float, Field(ge=0, le=50)]
MeanElevationDeg = Annotated[float, Field(ge=-90, le=90)]


class ExecutedObsUnitStart(Strict):
    obs_unit_id: IntId
    instrument_module_id: IntId | None = None
    start_time: Timestamp | None = Field(
        default=None, description="When the observation started; defaults to now."
    )
    mean_pwv_mm: PwvMm | None = None
    mean_elevation_deg: MeanElevationDeg | None = None
    conditions: Conditions = Field(default_factory=dict)

    model_config = examples({"obs_unit_id": 1, "instrument_module_id": 2})


class ExecutedObsUnitFinish(Strict):
    model_config = examples(
        {"status": "success", "end_time": "2026-11-22T04:30:00Z", "mean_pwv_mm": 0.7}
    )

    status: Literal["success", "failed", "interrupted"] = "success"
    end_time: Timestamp | None = Field(default=None, description="Defaults to now.")
    mean_pwv_mm: PwvMm | None = None
    mean_elevation_deg: MeanElevationDeg | None = None
    conditions: Conditions | None = Field(
        default=None, description="Merged into the conditions recorded at start."
    )


class ExecutedObsUnitRead(ReadModel):
    id: UUID
    obs_unit_id: int
    site_id: int
    instrument_module_id: int | None
    status: str
    start_time: datetime
    end_time: datetime | None
    mean_pwv_mm: float | None
    mean_elevation_deg: float | None
    conditions: dict[str, Any]
    created_by: str
    created_at: datetime
    updated_at: datetime


class PackageDetails(RawDataPackageRead):
    files: list[RawDataFileRead]
    transfers: list[TransferRead]


class ExecutedObsUnitDetails(ExecutedObsUnitRead):
    packages: list[PackageDetails]
    unpackaged_files: list[RawDataFileRead]
