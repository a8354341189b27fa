"""Where and with what the observatory observes: sites, the observatory and its telescope,
instruments, their modules and module configurations. Written at main (integer keys)."""

from __future__ import annotations

from typing import Any

from sqlalchemy import ForeignKey, UniqueConstraint
from sqlalchemy import true as sa_true
from sqlalchemy.orm import Mapped, mapped_column

from ccat_api.db.models.base import Base


class Site(Base):
    """A place: the telescope site, or a data centre that receives, archives or processes."""

    __tablename__ = "sites"
    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(unique=True)
    short_name: Mapped[str] = mapped_column(unique=True)
    description: Mapped[str] = mapped_column(default="", server_default="")
    latitude_deg: Mapped[float]
    longitude_deg: Mapped[float]
    elevation_m: Mapped[float]


class Observatory(Base):
    __tablename__ = "observatories"
    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(unique=True)
    description: Mapped[str] = mapped_column(default="", server_default="")


class Telescope(Base):
    __tablename__ = "telescopes"
    id: Mapped[int] = mapped_column(primary_key=True)
    observatory_id: Mapped[int] = mapped_column(ForeignKey("observatories.id"), index=True)
    site_id: Mapped[int] = mapped_column(ForeignKey("sites.id"), index=True)
    name: Mapped[str] = mapped_column(unique=True)
    diameter_m: Mapped[float]
    description: Mapped[str] = mapped_column(default="", server_default="")


class Instrument(Base):
    __tablename__ = "instruments"
    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(unique=True)
    description: Mapped[str] = mapped_column(default="", server_default="")
    instrument_type: Mapped[str]
    site_id: Mapped[int] = mapped_column(ForeignKey("sites.id"), index=True)
    telescope_id: Mapped[int | None] = mapped_column(ForeignKey("telescopes.id"), index=True)
    active: Mapped[bool] = mapped_column(default=True, server_default=sa_true())


class InstrumentModule(Base):
    __tablename__ = "instrument_modules"
    __table_args__ = (UniqueConstraint("instrument_id", "name"),)
    id: Mapped[int] = mapped_column(primary_key=True)
    instrument_id: Mapped[int] = mapped_column(ForeignKey("instruments.id"), index=True)
    name: Mapped[str]
    description: Mapped[str] = mapped_column(default="", server_default="")
    pixel_count: Mapped[int] = mapped_column(default=1, server_default="1")


class InstrumentModuleConfiguration(Base):
    __tablename__ = "instrument_module_configurations"
    __table_args__ = (UniqueConstraint("instrument_module_id", "name"),)
    id: Mapped[int] = mapped_column(primary_key=True)
    instrument_module_id: Mapped[int] = mapped_column(
        ForeignKey("instrument_modules.id"), index=True
    )
    name: Mapped[str]
    parameters: Mapped[dict[str, Any]] = mapped_column(default=dict, server_default="{}")
