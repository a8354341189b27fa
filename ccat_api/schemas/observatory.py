"""The observatory, its telescope, instruments, modules, modes and configurations, and where
data goes: data locations and transfer routes."""

from __future__ import annotations

from typing import Annotated, Any, Literal, Self

from pydantic import BaseModel, Field, model_validator

from ccat_api.schemas.common import ReadModel
from ccat_api.schemas.inputs import Conditions, IdParam, IntId, Name, Strict, examples
from ccat_api.schemas.programs import Search


class SiteRead(ReadModel):
    id: int
    name: str
    short_name: str
    description: str
    latitude_deg: float
    longitude_deg: float
    elevation_m: float


class ObservatoryRead(ReadModel):
    id: int
    name: str
    description: str


class TelescopeRead(ReadModel):
    id: int
    observatory_id: int
    site_id: int
    name: str
    diameter_m: float
    description: str


class InstrumentRead(ReadModel):
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


class InstrumentModuleRead(ReadModel):
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


class ModuleConfigurationRead(ReadModel):
    id: int
    instrument_module_id: int
    name: str
    parameters: dict[str, Any]


class ModuleConfigurationFilters(BaseModel):
    instrument_module_id: IdParam | None = None


class ObservationModeRead(ReadModel):
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


class ObservationConfigurationRead(ReadModel):
    id: int
    name: str
    observation_mode_id: int
    instrument_module_configuration_id: int | None
    parameters: dict[str, Any]


class ObservationConfigurationFilters(BaseModel):
    observation_mode_id: IdParam | None = None


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


class DataLocationRead(ReadModel):
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


class RouteRead(ReadModel):
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
