"""Observing programs and sub-programs, sources (fixed, solar-system, constant-elevation)
and obs units: reference data main writes and every site reads.

References to other records are checked by main's foreign keys and come back as a 422
naming the field."""

from __future__ import annotations

from typing import Annotated, Any, Literal, Self

from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from ccat_api.errors import Unprocessable
from ccat_api.schemas.common import ReadModel
from ccat_api.schemas.inputs import IdParam, IntId, Name, Strict, examples

Slug = Annotated[str, Field(min_length=1, max_length=60, pattern=r"^[a-z0-9][a-z0-9._-]*$")]


Text = Annotated[str, Field(max_length=5000, pattern=r"^[^\x00]*$")]


class Search(BaseModel):
    """List filters (query parameters; the list's own ``order``, ``limit`` and ``offset`` sit
    beside them, so these models accept other keys)."""

    q: str | None = Field(default=None, max_length=100, description="Part of the name")


class ObservingProgramCreate(Strict):
    short_name: Slug
    name: Name
    description: Text = ""
    pi_name: Text = ""

    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={
            "examples": [
                {"short_name": "deep56", "name": "Deep wide-field survey", "pi_name": "A. Astro"}
            ]
        },
    )


class ObservingProgramUpdate(Strict):
    model_config = examples({"name": "Deep wide-field survey, season 2"})

    name: Name | None = None
    description: Text | None = None
    pi_name: Text | None = None


class ObservingProgramRead(ReadModel):
    id: int
    short_name: str
    name: str
    description: str
    pi_name: str


class SubObservingProgramCreate(Strict):
    model_config = examples({"observing_program_id": 1, "short_name": "wide", "name": "Wide tiles"})

    observing_program_id: IntId
    short_name: Slug
    name: Name
    description: Text = ""


class SubObservingProgramUpdate(Strict):
    model_config = examples({"description": "Tiles 1-40"})

    name: Name | None = None
    description: Text | None = None


class SubObservingProgramRead(ReadModel):
    id: int
    observing_program_id: int
    short_name: str
    name: str
    description: str


class SubProgramFilters(Search):
    observing_program_id: IdParam | None = None


SOLAR_SYSTEM_BODIES = (
    "sun", "moon", "mercury", "venus", "mars", "jupiter", "saturn", "uranus", "neptune",
)  # fmt: skip
SolarSystemBody = Literal[SOLAR_SYSTEM_BODIES]  # type: ignore[valid-type]

# A source's position, as a create and an update take it (one set of bounds for both).
RaDeg = Annotated[float, Field(ge=0, lt=360)]
DecDeg = Annotated[float, Field(ge=-90, le=90)]
ElevationDeg = Annotated[float, Field(gt=0, le=90)]
AzimuthMinDeg = Annotated[float, Field(ge=0, lt=360)]
AzimuthMaxDeg = Annotated[float, Field(ge=0, le=360)]


class SourceCreate(Strict):
    name: Name
    source_type: Literal["fixed", "solar_system", "constant_elevation"]
    ra_deg: RaDeg | None = Field(default=None, description="ICRS, fixed sources")
    dec_deg: DecDeg | None = None
    body: SolarSystemBody | None = None
    elevation_deg: ElevationDeg | None = None
    azimuth_min_deg: AzimuthMinDeg | None = None
    azimuth_max_deg: AzimuthMaxDeg | None = None
    description: Text = ""

    model_config = ConfigDict(
        extra="forbid",
        allow_inf_nan=False,
        json_schema_extra={
            "examples": [
                {"name": "Orion KL", "source_type": "fixed", "ra_deg": 83.8221, "dec_deg": -5.3911},
                {"name": "Mars", "source_type": "solar_system", "body": "mars"},
                {"name": "CES-45", "source_type": "constant_elevation", "elevation_deg": 45,
                 "azimuth_min_deg": 120, "azimuth_max_deg": 240},
            ]
        },
    )  # fmt: skip

    @model_validator(mode="after")
    def _fields_of_its_type(self) -> Self:
        needed = {
            "fixed": ("ra_deg", "dec_deg"),
            "solar_system": ("body",),
            "constant_elevation": ("elevation_deg", "azimuth_min_deg", "azimuth_max_deg"),
        }[self.source_type]
        missing = [f for f in needed if getattr(self, f) is None]
        if missing:
            raise ValueError(f"{missing[0]}: required for a {self.source_type} source")
        others = {"ra_deg", "dec_deg", "body", "elevation_deg", "azimuth_min_deg",
                  "azimuth_max_deg"} - set(needed)  # fmt: skip
        extra = sorted(f for f in others if getattr(self, f) is not None)
        if extra:
            raise ValueError(f"{extra[0]}: not used by a {self.source_type} source")
        return self


class SourceUpdate(Strict):
    model_config = examples({"description": "Hot core"})

    name: Name | None = None
    ra_deg: RaDeg | None = None
    dec_deg: DecDeg | None = None
    body: SolarSystemBody | None = None
    elevation_deg: ElevationDeg | None = None
    azimuth_min_deg: AzimuthMinDeg | None = None
    azimuth_max_deg: AzimuthMaxDeg | None = None
    description: Text | None = None


class SourceRead(ReadModel):
    id: int
    name: str
    source_type: str
    ra_deg: float | None
    dec_deg: float | None
    body: str | None
    elevation_deg: float | None
    azimuth_min_deg: float | None
    azimuth_max_deg: float | None
    description: str


class SourceFilters(Search):
    source_type: Literal["fixed", "solar_system", "constant_elevation"] | None = None


class SourceWithDistance(SourceRead):
    distance_deg: float


class ObsUnitCreate(Strict):
    model_config = examples(
        {
            "name": "deep56-tile-041",
            "observing_program_id": 1,
            "instrument_id": 1,
            "source_id": 72,
            "priority": 2.0,
        }
    )

    name: Name
    observing_program_id: IntId
    sub_observing_program_id: IntId | None = None
    instrument_id: IntId
    source_id: IntId | None = None
    observation_configuration_id: IntId | None = None
    priority: float = Field(default=1.0, ge=0, le=100)
    min_elevation_deg: float = Field(default=30.0, ge=0, le=90)
    duration_s: float = Field(default=3600.0, gt=0, le=7 * 24 * 3600)
    description: Text = ""


class ObsUnitUpdate(Strict):
    model_config = examples({"priority": 3.5})

    name: Name | None = None
    sub_observing_program_id: IntId | None = None
    source_id: IntId | None = None
    observation_configuration_id: IntId | None = None
    priority: float | None = Field(default=None, ge=0, le=100)
    min_elevation_deg: float | None = Field(default=None, ge=0, le=90)
    duration_s: float | None = Field(default=None, gt=0, le=7 * 24 * 3600)
    description: Text | None = None


class ObsUnitRead(ReadModel):
    id: int
    name: str
    observing_program_id: int
    sub_observing_program_id: int | None
    instrument_id: int
    source_id: int | None
    observation_configuration_id: int | None
    priority: float
    min_elevation_deg: float
    duration_s: float
    description: str


class ObsUnitFilters(Search):
    observing_program_id: IdParam | None = None
    sub_observing_program_id: IdParam | None = None
    instrument_id: IdParam | None = None
    source_id: IdParam | None = None


async def validate_source(
    _: object, changes: dict[str, Any], current: dict[str, Any] | None
) -> None:
    """An update must leave a source that is still valid for its type."""
    if current is None:
        return
    merged = {k: v for k, v in {**current, **changes}.items() if k != "id"}
    try:
        SourceCreate.model_validate(merged)
    except ValidationError as exc:
        first = exc.errors()[0]
        field = ".".join(str(p) for p in first["loc"]) or str(first["msg"]).split(":")[0]
        raise Unprocessable(str(first["msg"]).removeprefix("Value error, "), field=field) from exc
