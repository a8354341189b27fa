"""What to observe: programs and sub-programs, sources, observation modes and configurations,
and obs units. Written at main (integer keys); the observatory reads them from its replica."""

from __future__ import annotations

from enum import StrEnum
from typing import Any

from sqlalchemy import CheckConstraint, ForeignKey, Index, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from ccat_api.db.models.base import Base, check_in


class SourceType(StrEnum):
    FIXED = "fixed"  # RA/Dec (ICRS)
    SOLAR_SYSTEM = "solar_system"  # a body of the solar system, by name
    CONSTANT_ELEVATION = "constant_elevation"  # scans at a fixed elevation over an azimuth range


class ObservingProgram(Base):
    __tablename__ = "observing_programs"
    id: Mapped[int] = mapped_column(primary_key=True)
    short_name: Mapped[str] = mapped_column(unique=True)
    name: Mapped[str]
    description: Mapped[str] = mapped_column(default="", server_default="")
    pi_name: Mapped[str] = mapped_column(default="", server_default="")


class SubObservingProgram(Base):
    __tablename__ = "sub_observing_programs"
    __table_args__ = (UniqueConstraint("observing_program_id", "short_name"),)
    id: Mapped[int] = mapped_column(primary_key=True)
    observing_program_id: Mapped[int] = mapped_column(
        ForeignKey("observing_programs.id"), index=True
    )
    short_name: Mapped[str]
    name: Mapped[str]
    description: Mapped[str] = mapped_column(default="", server_default="")


class Source(Base):
    __tablename__ = "sources"
    __table_args__ = (
        check_in("source_type", SourceType),
        CheckConstraint(
            "source_type <> 'fixed' OR (ra_deg IS NOT NULL AND dec_deg IS NOT NULL)",
            name="fixed_has_coordinates",
        ),
        CheckConstraint(
            "source_type <> 'solar_system' OR body IS NOT NULL", name="solar_system_has_body"
        ),
        CheckConstraint(
            "source_type <> 'constant_elevation' OR elevation_deg IS NOT NULL",
            name="constant_elevation_has_elevation",
        ),
        Index("ix_sources_ra_dec", "ra_deg", "dec_deg"),
    )
    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(unique=True)
    source_type: Mapped[str]
    ra_deg: Mapped[float | None]
    dec_deg: Mapped[float | None]
    body: Mapped[str | None]
    elevation_deg: Mapped[float | None]
    azimuth_min_deg: Mapped[float | None]
    azimuth_max_deg: Mapped[float | None]
    description: Mapped[str] = mapped_column(default="", server_default="")


class ObservationMode(Base):
    __tablename__ = "observation_modes"
    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(unique=True)
    description: Mapped[str] = mapped_column(default="", server_default="")


class ObservationConfiguration(Base):
    __tablename__ = "observation_configurations"
    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(unique=True)
    observation_mode_id: Mapped[int] = mapped_column(ForeignKey("observation_modes.id"))
    instrument_module_configuration_id: Mapped[int | None] = mapped_column(
        ForeignKey("instrument_module_configurations.id")
    )
    parameters: Mapped[dict[str, Any]] = mapped_column(default=dict, server_default="{}")


class ObsUnit(Base):
    __tablename__ = "obs_units"
    __table_args__ = (UniqueConstraint("observing_program_id", "name"),)
    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str]
    observing_program_id: Mapped[int] = mapped_column(
        ForeignKey("observing_programs.id"), index=True
    )
    sub_observing_program_id: Mapped[int | None] = mapped_column(
        ForeignKey("sub_observing_programs.id"), index=True
    )
    instrument_id: Mapped[int] = mapped_column(ForeignKey("instruments.id"), index=True)
    source_id: Mapped[int | None] = mapped_column(ForeignKey("sources.id"), index=True)
    observation_configuration_id: Mapped[int | None] = mapped_column(
        ForeignKey("observation_configurations.id")
    )
    priority: Mapped[float] = mapped_column(default=1.0, server_default="1.0")
    min_elevation_deg: Mapped[float] = mapped_column(default=30.0, server_default="30.0")
    duration_s: Mapped[float] = mapped_column(default=3600.0, server_default="3600.0")
    description: Mapped[str] = mapped_column(default="", server_default="")
