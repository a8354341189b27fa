"""Request and response bodies: ``<Thing>Create``, ``<Thing>Update``, ``<Thing>Read``.

Validation that needs no database lives here, so a malformed body is refused with a 422
naming the field before anything is looked up or buffered.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any, Generic, Literal, Self, TypeVar
from uuid import UUID

from pydantic import BaseModel, ConfigDict, Field, model_validator

from ccat_api.domain.inputs import (
    MAX_FILE_SIZE_BYTES,
    Checksum,
    Conditions,
    FileType,
    IntId,
    Message,
    Name,
    Path,
    RelativePath,
    Strict,
    Timestamp,
    Uuid,
    examples,
)

# --- writes ----------------------------------------------------------------------------------


class ExecutedObsUnitStart(Strict):
    obs_unit_id: IntId
    instrument_module_id: IntId | None = None
    start_time: Timestamp | None = Field(
        default=None, description="When the observation started; defaults to now."
    )
    mean_pwv_mm: float | None = Field(default=None, ge=0, le=50)
    mean_elevation_deg: float | None = Field(default=None, ge=-90, le=90)
    conditions: Conditions = Field(default_factory=dict)

    model_config = examples({"obs_unit_id": 1, "instrument_module_id": 2})


class ExecutedObsUnitFinish(Strict):
    model_config = examples(
        {"status": "success", "end_time": "2026-11-22T04:30:00Z", "mean_pwv_mm": 0.7}
    )

    status: Literal["success", "failed", "interrupted"] = "success"
    end_time: Timestamp | None = Field(default=None, description="Defaults to now.")
    mean_pwv_mm: float | None = Field(default=None, ge=0, le=50)
    mean_elevation_deg: float | None = Field(default=None, ge=-90, le=90)
    conditions: Conditions | None = Field(
        default=None, description="Merged into the conditions recorded at start."
    )


class RawDataFileFields(Strict):
    name: Name
    relative_path: RelativePath
    size_bytes: int = Field(ge=0, le=MAX_FILE_SIZE_BYTES)
    checksum: Checksum
    file_type: FileType
    instrument_module_id: IntId


class RawDataFileCreate(RawDataFileFields):
    model_config = examples(
        {
            "name": "scan_0001.fits",
            "relative_path": "2026/11/22/scan_0001.fits",
            "size_bytes": 52428800,
            "checksum": "sha256:9f86d081884c7d65",
            "file_type": "fits",
            "instrument_module_id": 1,
            "executed_obs_unit_id": "019a4c2e-7f00-7000-8000-000000000001",
        }
    )

    executed_obs_unit_id: Uuid
    raw_data_package_id: Uuid | None = None


class RawDataFileBulkCreate(Strict):
    model_config = examples(
        {
            "files": [
                {
                    "name": "scan_0001.fits",
                    "relative_path": "2026/11/22/scan_0001.fits",
                    "size_bytes": 52428800,
                    "checksum": "sha256:9f86d081884c7d65",
                    "file_type": "fits",
                    "instrument_module_id": 1,
                    "executed_obs_unit_id": "019a4c2e-7f00-7000-8000-000000000001",
                }
            ]
        }
    )

    files: list[RawDataFileCreate] = Field(min_length=1, max_length=1000)

    @model_validator(mode="after")
    def _paths_distinct(self) -> Self:
        seen: dict[str, int] = {}
        for i, f in enumerate(self.files):
            if f.relative_path in seen:
                raise ValueError(f"files[{i}].relative_path repeats files[{seen[f.relative_path]}]")
            seen[f.relative_path] = i
        return self


class RawDataPackageCreate(Strict):
    model_config = examples(
        {
            "name": "pkg-2026-11-22-0001",
            "executed_obs_unit_id": "019a4c2e-7f00-7000-8000-000000000001",
            "instrument_module_id": 1,
            "raw_data_file_ids": ["019a4c2e-7f00-7000-8000-000000000002"],
        }
    )

    name: Name
    executed_obs_unit_id: Uuid
    instrument_module_id: IntId
    raw_data_file_ids: list[Uuid] = Field(
        default_factory=list, max_length=10000, description="Existing files to pack."
    )
    files: list[RawDataFileFields] = Field(
        default_factory=list,
        max_length=1000,
        description="New files created in the same transaction, inside the package.",
    )

    @model_validator(mode="after")
    def _has_files_distinct(self) -> Self:
        if len(set(self.raw_data_file_ids)) != len(self.raw_data_file_ids):
            raise ValueError("raw_data_file_ids contains the same file twice")
        paths = [f.relative_path for f in self.files]
        if len(set(paths)) != len(paths):
            raise ValueError("files contains the same relative_path twice")
        return self


class RawDataPackageFinalize(Strict):
    model_config = examples({"checksum": "md5:0123456789abcdef"})

    checksum: Checksum | None = None


class WriteAccepted(BaseModel):
    """The answer to every critical write, at either kind of site."""

    id: UUID
    tx_id: UUID
    status: Literal["buffered", "applied"]
    ids: list[UUID] = Field(default_factory=list, description="Every record this write created.")


# --- reads -----------------------------------------------------------------------------------


class ReadModel(BaseModel):
    model_config = ConfigDict(from_attributes=True)


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


class RawDataFileRead(ReadModel):
    id: UUID
    name: str
    relative_path: str
    size_bytes: int
    checksum: str
    file_type: str
    instrument_module_id: int
    executed_obs_unit_id: UUID
    raw_data_package_id: UUID | None
    created_at: datetime


class RawDataPackageRead(ReadModel):
    id: UUID
    name: str
    executed_obs_unit_id: UUID
    instrument_module_id: int
    status: str
    file_count: int
    total_size_bytes: int
    checksum: str | None
    created_at: datetime
    updated_at: datetime


class RawDataPackageWithFiles(RawDataPackageRead):
    files: list[RawDataFileRead]


class ObsUnitRead(ReadModel):
    id: int
    name: str
    observing_program_id: int
    instrument_id: int
    priority: float
    description: str


class InstrumentModuleRead(ReadModel):
    id: int
    instrument_id: int
    name: str
    description: str
    pixel_count: int


T = TypeVar("T")


class PageRead(BaseModel, Generic[T]):
    items: list[T]
    total: int
    limit: int
    offset: int


class TransactionRead(BaseModel):
    tx_id: str
    state: str
    seq: int
    created_at: float | None = Field(description="Unix time (s) of acceptance")
    applied_at: float | None
    visible_at: float | None
    failed_at: float | None
    lsn: int | None = Field(description="Commit LSN on main, as a byte position")
    attempts: int
    last_error: str | None
    error_code: str | None
    error: str | None
    depends_on: list[str]
    records: list[str]


class RetryResult(BaseModel):
    retried: list[str] = Field(description="The dead letters re-buffered, in order")


# --- data transfer --------------------------------------------------------------------------


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


class TransferRead(BaseModel):
    model_config = ConfigDict(from_attributes=True)
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


class TransferLogRead(BaseModel):
    model_config = ConfigDict(from_attributes=True)
    id: UUID
    data_transfer_id: UUID
    level: str
    message: str
    logged_at: datetime


class PhysicalCopyRead(BaseModel):
    model_config = ConfigDict(from_attributes=True)
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


# --- an executed obs unit with everything it produced ------------------------------------


class PackageDetails(RawDataPackageRead):
    files: list[RawDataFileRead]
    transfers: list[TransferRead]


class ExecutedObsUnitDetails(ExecutedObsUnitRead):
    packages: list[PackageDetails]
    unpackaged_files: list[RawDataFileRead]
