"""Raw data files and packages: what instruments send and what reads answer."""

from __future__ import annotations

from datetime import datetime
from typing import Self
from uuid import UUID

from pydantic import Field, model_validator

from ccat_api.schemas.common import ReadModel
from ccat_api.schemas.inputs import (
    MAX_FILE_SIZE_BYTES,
    Checksum,
    FileType,
    IntId,
    Name,
    RelativePath,
    Strict,
    Uuid,
    examples,
)


class RawDataFileFields(Strict):
    name: Name
    relative_path: RelativePath
    size_bytes: int = Field(ge=0, le=MAX_FILE_SIZE_BYTES)
    checksum: Checksum
    file_type: FileType
    instrument_module_id: IntId


FILE_EXAMPLE = {
    "name": "scan_0001.fits",
    "relative_path": "2026/11/22/scan_0001.fits",
    "size_bytes": 52428800,
    "checksum": "sha256:9f86d081884c7d65",
    "file_type": "fits",
    "instrument_module_id": 1,
    "executed_obs_unit_id": "019a4c2e-7f00-7000-8000-000000000001",
}


class RawDataFileCreate(RawDataFileFields):
    model_config = examples(FILE_EXAMPLE)

    executed_obs_unit_id: Uuid
    raw_data_package_id: Uuid | None = None


class RawDataFileBulkCreate(Strict):
    model_config = examples({"files": [FILE_EXAMPLE]})

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
