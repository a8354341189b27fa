"""Where data lives and how it moves: data locations and the physical copies they hold,
transfer routes, data transfers and their logs (critical writes at the observatory), and the
long-term-archive transfers and staging jobs driven from main."""

from __future__ import annotations

import uuid
from datetime import datetime
from enum import StrEnum

from sqlalchemy import BigInteger, ForeignKey, Index
from sqlalchemy import true as sa_true
from sqlalchemy.orm import Mapped, mapped_column

from ccat_api.db.models.base import Base, Timestamped, Versioned, check_in, utc_now_column


class LocationType(StrEnum):
    DISK = "disk"
    S3 = "s3"
    TAPE = "tape"


class LocationRole(StrEnum):
    SOURCE = "source"  # where instruments write
    BUFFER = "buffer"  # staging disk before shipping
    LONG_TERM_ARCHIVE = "long_term_archive"
    PROCESSING = "processing"


class CopyStatus(StrEnum):
    PRESENT = "present"
    VERIFIED = "verified"
    DELETED = "deleted"
    CORRUPT = "corrupt"


class RouteType(StrEnum):
    DIRECT = "direct"
    RELAY = "relay"  # through an intermediate site


class TransferStatus(StrEnum):
    PENDING = "pending"
    TRANSFERRING = "transferring"
    COMPLETED = "completed"
    FAILED = "failed"


class LogLevel(StrEnum):
    DEBUG = "debug"
    INFO = "info"
    WARNING = "warning"
    ERROR = "error"


class ArchiveStatus(StrEnum):
    PENDING = "pending"
    IN_PROGRESS = "in_progress"
    COMPLETED = "completed"
    FAILED = "failed"


class StagingStatus(StrEnum):
    PENDING = "pending"
    STAGING = "staging"
    COMPLETED = "completed"
    FAILED = "failed"
    CANCELLED = "cancelled"


# --- reference data (main) ----------------------------------------------------------------


class DataLocation(Base):
    __tablename__ = "data_locations"
    __table_args__ = (check_in("location_type", LocationType), check_in("role", LocationRole))
    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(unique=True)
    site_id: Mapped[int] = mapped_column(ForeignKey("sites.id"), index=True)
    location_type: Mapped[str]
    role: Mapped[str]
    base_uri: Mapped[str]
    active: Mapped[bool] = mapped_column(default=True, server_default=sa_true())


class DataTransferRoute(Base):
    __tablename__ = "data_transfer_routes"
    __table_args__ = (check_in("route_type", RouteType),)
    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(unique=True)
    origin_location_id: Mapped[int] = mapped_column(ForeignKey("data_locations.id"))
    destination_location_id: Mapped[int] = mapped_column(ForeignKey("data_locations.id"))
    route_type: Mapped[str]
    via_site_id: Mapped[int | None] = mapped_column(ForeignKey("sites.id"))
    method: Mapped[str] = mapped_column(default="bbcp", server_default="bbcp")
    active: Mapped[bool] = mapped_column(default=True, server_default=sa_true())


# --- observatory records (critical writes at a secondary site) -----------------------------


class PhysicalCopy(Versioned, Timestamped, Base):
    __tablename__ = "physical_copies"
    __table_args__ = (check_in("status", CopyStatus),)
    id: Mapped[uuid.UUID] = mapped_column(primary_key=True)
    raw_data_package_id: Mapped[uuid.UUID] = mapped_column(
        ForeignKey("raw_data_packages.id"), index=True
    )
    data_location_id: Mapped[int] = mapped_column(ForeignKey("data_locations.id"), index=True)
    path: Mapped[str]
    status: Mapped[str]
    checksum: Mapped[str | None]


class DataTransfer(Versioned, Timestamped, Base):
    __tablename__ = "data_transfers"
    __table_args__ = (
        check_in("status", TransferStatus),
        Index("ix_data_transfers_status_created", "status", "created_at"),
    )
    id: Mapped[uuid.UUID] = mapped_column(primary_key=True)
    raw_data_package_id: Mapped[uuid.UUID] = mapped_column(
        ForeignKey("raw_data_packages.id"), index=True
    )
    route_id: Mapped[int] = mapped_column(ForeignKey("data_transfer_routes.id"), index=True)
    status: Mapped[str]
    bytes_total: Mapped[int] = mapped_column(BigInteger, default=0, server_default="0")
    bytes_transferred: Mapped[int] = mapped_column(BigInteger, default=0, server_default="0")
    attempts: Mapped[int] = mapped_column(default=0, server_default="0")
    error: Mapped[str | None]
    started_at: Mapped[datetime | None]
    finished_at: Mapped[datetime | None]


class DataTransferLog(Base):
    __tablename__ = "data_transfer_logs"
    __table_args__ = (
        check_in("level", LogLevel),
        Index("ix_data_transfer_logs_transfer_at", "data_transfer_id", "logged_at"),
    )
    id: Mapped[uuid.UUID] = mapped_column(primary_key=True)
    data_transfer_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("data_transfers.id"))
    level: Mapped[str]
    message: Mapped[str]
    logged_at: Mapped[datetime]


# --- driven from main ---------------------------------------------------------------------


class LongTermArchiveTransfer(Base):
    __tablename__ = "long_term_archive_transfers"
    __table_args__ = (check_in("status", ArchiveStatus),)
    id: Mapped[uuid.UUID] = mapped_column(primary_key=True)
    raw_data_package_id: Mapped[uuid.UUID] = mapped_column(
        ForeignKey("raw_data_packages.id"), index=True
    )
    data_location_id: Mapped[int] = mapped_column(ForeignKey("data_locations.id"))
    status: Mapped[str]
    error: Mapped[str | None]
    requested_at: Mapped[datetime] = utc_now_column()
    completed_at: Mapped[datetime | None]


class StagingJob(Timestamped, Base):
    """Bring archived packages back to a processing location."""

    __tablename__ = "staging_jobs"
    __table_args__ = (check_in("status", StagingStatus),)
    id: Mapped[uuid.UUID] = mapped_column(primary_key=True)
    destination_location_id: Mapped[int] = mapped_column(ForeignKey("data_locations.id"))
    status: Mapped[str]
    requested_by: Mapped[str]
    error: Mapped[str | None]


class StagingJobPackage(Base):
    __tablename__ = "staging_job_packages"
    staging_job_id: Mapped[uuid.UUID] = mapped_column(
        ForeignKey("staging_jobs.id"), primary_key=True
    )
    raw_data_package_id: Mapped[uuid.UUID] = mapped_column(
        ForeignKey("raw_data_packages.id"), primary_key=True
    )
