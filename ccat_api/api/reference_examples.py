"""Example records of the reference data (programs, sources, the observatory, locations and
routes) for the OpenAPI document, as ``api/examples.py`` has them for the critical records."""

from __future__ import annotations

from ccat_api.api.examples import Example

OBSERVING_PROGRAM: Example = {
    "id": 1,
    "short_name": "deep56",
    "name": "Deep wide-field survey (Deep56)",
    "description": "",
    "pi_name": "PrimeCam team",
}
SUB_OBSERVING_PROGRAM: Example = {
    "id": 1,
    "observing_program_id": 1,
    "short_name": "wide",
    "name": "Wide tiles",
    "description": "",
}
OBS_UNIT: Example = {
    "id": 1,
    "name": "deep56-tile-001",
    "observing_program_id": 1,
    "sub_observing_program_id": 1,
    "instrument_id": 1,
    "source_id": 31,
    "observation_configuration_id": 1,
    "priority": 1.0,
    "min_elevation_deg": 30.0,
    "duration_s": 3600.0,
    "description": "",
}
SOURCE: Example = {
    "id": 1,
    "name": "Orion KL",
    "source_type": "fixed",
    "ra_deg": 83.8221,
    "dec_deg": -5.3911,
    "body": None,
    "elevation_deg": None,
    "azimuth_min_deg": None,
    "azimuth_max_deg": None,
    "description": "",
}
SOURCE_WITH_DISTANCE: Example = {**SOURCE, "distance_deg": 0.4123}
VISIBILITY: Example = {
    "source_id": 1,
    "site_id": 1,
    "date": "2026-11-22",
    "step_minutes": 10,
    "samples": [
        {"time": "2026-11-22T00:00:00+00:00", "altitude_deg": 21.3408, "azimuth_deg": 95.1021},
        {"time": "2026-11-22T00:10:00+00:00", "altitude_deg": 23.6812, "azimuth_deg": 94.3377},
    ],
    "max_altitude_deg": 72.3751,
    "time_of_max": "2026-11-22T04:01:00+00:00",
}
VISIBILITY_HEATMAP: Example = {
    "source_id": 1,
    "site_id": 1,
    "step_minutes": 30,
    "dates": ["2026-11-22", "2026-11-23"],
    "times_utc": ["00:00", "00:30"],
    "altitude_deg": [[21.34, 28.4], [21.6, 28.66]],
}
SITE: Example = {
    "id": 1,
    "name": "Fred Young Submillimeter Telescope",
    "short_name": "fyst",
    "description": "CCAT observatory on Cerro Chajnantor, Chile",
    "latitude_deg": -22.98556,
    "longitude_deg": -67.74028,
    "elevation_m": 5611.8,
}
OBSERVATORY: Example = {"id": 1, "name": "CCAT Observatory", "description": "CCAT collaboration"}
TELESCOPE: Example = {
    "id": 1,
    "observatory_id": 1,
    "site_id": 1,
    "name": "FYST",
    "diameter_m": 6.0,
    "description": "Fred Young Submillimeter Telescope",
}
INSTRUMENT: Example = {
    "id": 1,
    "name": "Prime-Cam",
    "description": "Broadband and spectroscopic camera",
    "instrument_type": "camera",
    "site_id": 1,
    "telescope_id": 1,
    "active": True,
}
INSTRUMENT_MODULE: Example = {
    "id": 1,
    "instrument_id": 1,
    "name": "280 GHz",
    "description": "",
    "pixel_count": 10368,
}
MODULE_CONFIGURATION: Example = {
    "id": 1,
    "instrument_module_id": 1,
    "name": "280 GHz nominal",
    "parameters": {"bias": "nominal"},
}
OBSERVATION_MODE: Example = {"id": 1, "name": "raster", "description": "Raster scan"}
OBSERVATION_CONFIGURATION: Example = {
    "id": 1,
    "name": "prime-cam raster 280",
    "observation_mode_id": 1,
    "instrument_module_configuration_id": 1,
    "parameters": {"speed_deg_s": 1.0},
}
DATA_LOCATION: Example = {
    "id": 2,
    "name": "fyst-buffer",
    "site_id": 1,
    "location_type": "disk",
    "role": "buffer",
    "base_uri": "/data/buffer",
    "active": True,
}
ROUTE: Example = {
    "id": 1,
    "name": "fyst-to-cologne",
    "origin_location_id": 2,
    "destination_location_id": 3,
    "route_type": "direct",
    "via_site_id": None,
    "method": "bbcp",
    "active": True,
}
