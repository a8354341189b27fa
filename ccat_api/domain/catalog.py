"""Reference data the observatory reads and main writes: programs, sources, obs units,
instruments, modes and configurations, sites, data locations and transfer routes.

Bodies are validated here (shape, ranges, per-type rules for sources); references to other
records are checked by main's foreign keys and come back as a 422 naming the field.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal, Self

from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from ccat_api.domain.inputs import Conditions, IdParam, IntId, Name, Strict, examples
from ccat_api.errors import Unprocessable

Slug = Annotated[str, Field(min_length=1, max_length=60, pattern=r"^[a-z0-9][a-z0-9._-]*$")]
Text = Annotated[str, Field(max_length=5000, pattern=r"^[^\x00]*$")]


class Read(BaseModel):
    model_config = ConfigDict(from_attributes=True)


class Search(BaseModel):
    """List filters (query parameters; the list's own ``order``, ``limit`` and ``offset`` sit
    beside them, so these models accept other keys)."""

    q: str | None = Field(default=None, max_length=100, description="Part of the name")


# --- programs -------------------------------------------------------------------------------


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


class ObservingProgramRead(Read):
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


class SubObservingProgramRead(Read):
    id: int
    observing_program_id: int
    short_name: str
    name: str
    description: str


class SubProgramFilters(Search):
    observing_program_id: IdParam | None = None


# --- sources --------------------------------------------------------------------------------

SOLAR_SYSTEM_BODIES = (
    "sun", "moon", "mercury", "venus", "mars", "jupiter", "saturn", "uranus", "neptune",
)  # fmt: skip


class SourceCreate(Strict):
    name: Name
    source_type: Literal["fixed", "solar_system", "constant_elevation"]
    ra_deg: float | None = Field(default=None, ge=0, lt=360, description="ICRS, fixed sources")
    dec_deg: float | None = Field(default=None, ge=-90, le=90)
    body: Literal[SOLAR_SYSTEM_BODIES] | None = None  # type: ignore[valid-type]
    elevation_deg: float | None = Field(default=None, gt=0, le=90)
    azimuth_min_deg: float | None = Field(default=None, ge=0, lt=360)
    azimuth_max_deg: float | None = Field(default=None, ge=0, le=360)
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
    ra_deg: float | None = Field(default=None, ge=0, lt=360)
    dec_deg: float | None = Field(default=None, ge=-90, le=90)
    body: Literal[SOLAR_SYSTEM_BODIES] | None = None  # type: ignore[valid-type]
    elevation_deg: float | None = Field(default=None, gt=0, le=90)
    azimuth_min_deg: float | None = Field(default=None, ge=0, lt=360)
    azimuth_max_deg: float | None = Field(default=None, ge=0, le=360)
    description: Text | None = None


class SourceRead(Read):
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


class SourceWithDistance(SourceRead):
    distance_deg: float


# --- obs units ------------------------------------------------------------------------------


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


class ObsUnitRead(Read):
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


# --- observatory and instruments ------------------------------------------------------------


class SiteRead(Read):
    id: int
    name: str
    short_name: str
    description: str
    latitude_deg: float
    longitude_deg: float
    elevation_m: float


class ObservatoryRead(Read):
    id: int
    name: str
    description: str


class TelescopeRead(Read):
    id: int
    observatory_id: int
    site_id: int
    name: str
    diameter_m: float
    description: str


class InstrumentRead(Read):
    id: int
    name: str
    description: str
    instrument_type: str
    site_id: int
    telescope_id: int | None
    active: bool


class InstrumentFilters(Search):
    site_id: IdParam | None = None
    telescope_id: IdParam | None = None


class InstrumentModuleRead(Read):
    id: int
    instrument_id: int
    name: str
    description: str
    pixel_count: int


class ModuleFilters(BaseModel):
    instrument_id: IdParam | None = None


class ModuleConfigurationCreate(Strict):
    model_config = examples(
        {"instrument_module_id": 1, "name": "280 GHz low bias", "parameters": {"bias": "low"}}
    )

    instrument_module_id: IntId
    name: Name
    parameters: Conditions = Field(default_factory=dict)


class ModuleConfigurationRead(Read):
    id: int
    instrument_module_id: int
    name: str
    parameters: dict[str, Any]


class ModuleConfigurationFilters(BaseModel):
    instrument_module_id: IdParam | None = None


class ObservationModeRead(Read):
    id: int
    name: str
    description: str


class ObservationConfigurationCreate(Strict):
    model_config = examples(
        {
            "name": "prime-cam raster fast",
            "observation_mode_id": 1,
            "parameters": {"speed_deg_s": 2.0},
        }
    )

    name: Name
    observation_mode_id: IntId
    instrument_module_configuration_id: IntId | None = None
    parameters: Conditions = Field(default_factory=dict)


class ObservationConfigurationRead(Read):
    id: int
    name: str
    observation_mode_id: int
    instrument_module_configuration_id: int | None
    parameters: dict[str, Any]


class ObservationConfigurationFilters(BaseModel):
    observation_mode_id: IdParam | None = None


# --- data locations and routes --------------------------------------------------------------


class DataLocationCreate(Strict):
    model_config = examples(
        {
            "name": "fyst-buffer-2",
            "site_id": 1,
            "location_type": "disk",
            "role": "buffer",
            "base_uri": "/data/buffer2",
        }
    )

    name: Name
    site_id: IntId
    location_type: Literal["disk", "s3", "tape"]
    role: Literal["source", "buffer", "long_term_archive", "processing"]
    base_uri: Annotated[str, Field(min_length=1, max_length=1024, pattern=r"^[^\x00-\x1f]+$")]
    active: bool = True


class DataLocationUpdate(Strict):
    model_config = examples({"active": False})

    base_uri: (
        Annotated[str, Field(min_length=1, max_length=1024, pattern=r"^[^\x00-\x1f]+$")] | None
    ) = None
    active: bool | None = None


class DataLocationRead(Read):
    id: int
    name: str
    site_id: int
    location_type: str
    role: str
    base_uri: str
    active: bool


class DataLocationFilters(Search):
    site_id: IdParam | None = None
    role: Literal["source", "buffer", "long_term_archive", "processing"] | None = None
    location_type: Literal["disk", "s3", "tape"] | None = None


class RouteCreate(Strict):
    model_config = examples(
        {
            "name": "fyst-to-cologne-s3",
            "origin_location_id": 2,
            "destination_location_id": 4,
            "route_type": "direct",
            "method": "s3",
        }
    )

    name: Name
    origin_location_id: IntId
    destination_location_id: IntId
    route_type: Literal["direct", "relay"]
    via_site_id: IntId | None = None
    method: Annotated[str, Field(min_length=1, max_length=40, pattern=r"^[a-z0-9_-]+$")] = "bbcp"
    active: bool = True

    @model_validator(mode="after")
    def _relay_names_its_site(self) -> Self:
        if (self.route_type == "relay") != (self.via_site_id is not None):
            raise ValueError(
                "via_site_id: a relay route names the site it goes through, a direct one none"
            )
        if self.origin_location_id == self.destination_location_id:
            raise ValueError("destination_location_id: must differ from origin_location_id")
        return self


class RouteUpdate(Strict):
    model_config = examples({"active": False})

    active: bool | None = None
    method: Annotated[str, Field(min_length=1, max_length=40, pattern=r"^[a-z0-9_-]+$")] | None = (
        None
    )


class RouteRead(Read):
    id: int
    name: str
    origin_location_id: int
    destination_location_id: int
    route_type: str
    via_site_id: int | None
    method: str
    active: bool


class RouteFilters(Search):
    origin_location_id: IdParam | None = None
    destination_location_id: IdParam | None = None
    route_type: Literal["direct", "relay"] | None = None
