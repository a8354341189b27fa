"""Reference data for the demo, the tests and a fresh development database.

Idempotent (rows are upserted by their fixed ids), so the stack can seed on every start. The
values follow the real observatory: FYST on Cerro Chajnantor with Prime-Cam and CHAI, data
shipped to Cologne (long-term archive) and Cornell (processing). The few hundred field
sources are generated deterministically around the survey fields.
"""

from __future__ import annotations

from typing import Any

import sqlalchemy as sa
from sqlalchemy.dialects.postgresql import insert

from ccat_api.db.engines import PrimaryDatabase
from ccat_api.db.models import (
    DataLocation,
    DataTransferRoute,
    Instrument,
    InstrumentModule,
    InstrumentModuleConfiguration,
    ObservationConfiguration,
    ObservationMode,
    Observatory,
    ObservingProgram,
    ObsUnit,
    Site,
    Source,
    SubObservingProgram,
    Telescope,
)

SITES = [
    {"id": 1, "name": "Fred Young Submillimeter Telescope", "short_name": "fyst",
     "description": "CCAT observatory on Cerro Chajnantor, Chile",
     "latitude_deg": -22.98556, "longitude_deg": -67.74028, "elevation_m": 5611.8},
    {"id": 2, "name": "University of Cologne", "short_name": "cologne",
     "description": "Long-term archive", "latitude_deg": 50.9280, "longitude_deg": 6.9290,
     "elevation_m": 60.0},
    {"id": 3, "name": "Cornell University", "short_name": "cornell",
     "description": "Data processing", "latitude_deg": 42.4534, "longitude_deg": -76.4735,
     "elevation_m": 250.0},
]  # fmt: skip

OBSERVATORIES = [{"id": 1, "name": "CCAT Observatory", "description": "CCAT collaboration"}]

TELESCOPES = [
    {"id": 1, "observatory_id": 1, "site_id": 1, "name": "FYST", "diameter_m": 6.0,
     "description": "Fred Young Submillimeter Telescope"},
]  # fmt: skip

INSTRUMENTS = [
    {"id": 1, "name": "Prime-Cam", "instrument_type": "camera", "site_id": 1, "telescope_id": 1,
     "description": "Wide-field broadband and spectroscopic camera"},
    {"id": 2, "name": "CHAI", "instrument_type": "heterodyne", "site_id": 1, "telescope_id": 1,
     "description": "CCAT Heterodyne Array Instrument"},
]  # fmt: skip

MODULES = [
    {"id": 1, "instrument_id": 1, "name": "280 GHz", "pixel_count": 10368},
    {"id": 2, "instrument_id": 1, "name": "350 GHz", "pixel_count": 10368},
    {"id": 3, "instrument_id": 1, "name": "850 GHz", "pixel_count": 20736},
    {"id": 4, "instrument_id": 1, "name": "EoR-Spec", "pixel_count": 6912},
    {"id": 5, "instrument_id": 2, "name": "LFA", "pixel_count": 64},
    {"id": 6, "instrument_id": 2, "name": "HFA", "pixel_count": 16},
]

MODULE_CONFIGURATIONS = [
    {"id": 1, "instrument_module_id": 1, "name": "280 GHz nominal",
     "parameters": {"bias": "nominal"}},
    {"id": 2, "instrument_module_id": 4, "name": "EoR-Spec 210-420 GHz",
     "parameters": {"resolution": 100, "band_ghz": [210, 420]}},
    {"id": 3, "instrument_module_id": 5, "name": "LFA [CII] 1.9 THz",
     "parameters": {"line": "CII", "rest_ghz": 1900.537}},
]  # fmt: skip

PROGRAMS = [
    {"id": 1, "short_name": "deep56", "name": "Deep wide-field survey (Deep56)",
     "pi_name": "PrimeCam team"},
    {"id": 2, "short_name": "eor", "name": "Epoch of Reionization line intensity mapping",
     "pi_name": "EoR-Spec team"},
    {"id": 3, "short_name": "gal-cii", "name": "Galactic [CII] mapping", "pi_name": "CHAI team"},
]  # fmt: skip

SUB_PROGRAMS = [
    {"id": 1, "observing_program_id": 1, "short_name": "wide", "name": "Wide tiles"},
    {"id": 2, "observing_program_id": 2, "short_name": "cosmos", "name": "E-COSMOS field"},
    {"id": 3, "observing_program_id": 3, "short_name": "gmc", "name": "Giant molecular clouds"},
]

MODES = [
    {"id": 1, "name": "raster", "description": "Raster scan"},
    {"id": 2, "name": "otf", "description": "On-the-fly map"},
    {"id": 3, "name": "ces", "description": "Constant-elevation scan"},
    {"id": 4, "name": "pointing", "description": "Pointing and focus"},
]

CONFIGURATIONS = [
    {"id": 1, "name": "prime-cam raster 280", "observation_mode_id": 1,
     "instrument_module_configuration_id": 1, "parameters": {"speed_deg_s": 1.0}},
    {"id": 2, "name": "eor-spec ces", "observation_mode_id": 3,
     "instrument_module_configuration_id": 2, "parameters": {"throw_deg": 10}},
    {"id": 3, "name": "chai otf cii", "observation_mode_id": 2,
     "instrument_module_configuration_id": 3, "parameters": {"row_spacing_arcsec": 7.5}},
]  # fmt: skip

NAMED_SOURCES = [
    ("Orion KL", 83.8221, -5.3911), ("M17 SW", 275.1125, -16.2003),
    ("Sgr B2(N)", 266.8351, -28.3719), ("W3(OH)", 36.7671, 61.8740),
    ("NGC 6334I", 260.2217, -35.7838), ("Carina Nebula", 161.2650, -59.8667),
    ("30 Doradus", 84.6763, -69.1006), ("Rho Oph A", 246.6500, -24.3900),
    ("IRC+10216", 146.9892, 13.2786), ("Centaurus A", 201.3651, -43.0191),
    ("Fomalhaut", 344.4127, -29.6222), ("Eta Carinae", 161.2648, -59.6844),
    ("NGC 253", 11.8880, -25.2882), ("M82", 148.9685, 69.6797),
    ("Arp 220", 233.7380, 23.5032), ("SPT0346-52", 56.6929, -52.0744),
    ("Uranus-cal", 30.0, 12.0), ("3C 279", 194.0465, -5.7893),
    ("PKS 1334-127", 204.4159, -12.9569), ("J1924-2914", 291.2128, -29.2417),
]  # fmt: skip


def _sources() -> list[dict[str, Any]]:
    blank = {"ra_deg": None, "dec_deg": None, "body": None, "elevation_deg": None,
             "azimuth_min_deg": None, "azimuth_max_deg": None, "description": ""}  # fmt: skip
    rows = [
        {**blank, "id": i + 1, "name": name, "source_type": "fixed", "ra_deg": ra, "dec_deg": dec}
        for i, (name, ra, dec) in enumerate(NAMED_SOURCES)
    ]
    next_id = len(rows) + 1
    for body in ("moon", "mars", "jupiter", "saturn", "uranus", "neptune", "venus"):
        rows.append({**blank, "id": next_id, "name": body.capitalize(),
                     "source_type": "solar_system", "body": body})  # fmt: skip
        next_id += 1
    for elevation in (30, 45, 60):
        rows.append({**blank, "id": next_id, "name": f"CES-{elevation}",
                     "source_type": "constant_elevation", "elevation_deg": float(elevation),
                     "azimuth_min_deg": 120.0, "azimuth_max_deg": 240.0})  # fmt: skip
        next_id += 1
    # Survey tiles: Deep56 (RA 0-30, Dec -8..+4) and E-COSMOS (RA 145-155, Dec -3..+7).
    for field, ra0, dec0, columns, rows_n, step in (
        ("D56", 0.5, -8.0, 20, 10, 1.5), ("COSMOS", 145.5, -3.0, 10, 7, 1.5),
    ):  # fmt: skip
        for r in range(rows_n):
            for col in range(columns):
                rows.append({**blank, "id": next_id, "name": f"{field}-T{r:02d}{col:02d}",
                             "source_type": "fixed", "ra_deg": round(ra0 + col * step, 4),
                             "dec_deg": round(dec0 + r * step, 4),
                             "description": f"{field} survey tile"})  # fmt: skip
                next_id += 1
    return rows


SOURCES = _sources()

OBS_UNITS = [
    {"id": 1, "name": "deep56-raster-001", "observing_program_id": 1, "instrument_id": 1,
     "sub_observing_program_id": 1, "source_id": 31, "observation_configuration_id": 1},
    {"id": 2, "name": "deep56-raster-002", "observing_program_id": 1, "instrument_id": 1,
     "sub_observing_program_id": 1, "source_id": 32, "observation_configuration_id": 1},
    {"id": 3, "name": "eor-cosmos-001", "observing_program_id": 2, "instrument_id": 1,
     "sub_observing_program_id": 2, "source_id": 231, "observation_configuration_id": 2},
    {"id": 4, "name": "cii-orion-otf-001", "observing_program_id": 3, "instrument_id": 2,
     "sub_observing_program_id": 3, "source_id": 1, "observation_configuration_id": 3},
    {"id": 5, "name": "cii-m17-otf-001", "observing_program_id": 3, "instrument_id": 2,
     "sub_observing_program_id": 3, "source_id": 2, "observation_configuration_id": 3},
] + [
    {"id": 5 + n, "name": f"deep56-tile-{n:03d}", "observing_program_id": 1, "instrument_id": 1,
     "sub_observing_program_id": 1, "source_id": 31 + n, "observation_configuration_id": 1}
    for n in range(1, 41)
]  # fmt: skip

LOCATIONS = [
    {"id": 1, "name": "fyst-instruments", "site_id": 1, "location_type": "disk",
     "role": "source", "base_uri": "/data/instruments"},
    {"id": 2, "name": "fyst-buffer", "site_id": 1, "location_type": "disk", "role": "buffer",
     "base_uri": "/data/buffer"},
    {"id": 3, "name": "cologne-archive", "site_id": 2, "location_type": "tape",
     "role": "long_term_archive", "base_uri": "tape://cologne/ccat"},
    {"id": 4, "name": "cologne-s3", "site_id": 2, "location_type": "s3",
     "role": "long_term_archive", "base_uri": "s3://ccat-archive"},
    {"id": 5, "name": "cornell-processing", "site_id": 3, "location_type": "disk",
     "role": "processing", "base_uri": "/scratch/ccat"},
]  # fmt: skip

ROUTES = [
    {"id": 1, "name": "fyst-to-cologne", "origin_location_id": 2, "destination_location_id": 3,
     "route_type": "direct", "via_site_id": None, "method": "bbcp"},
    {"id": 2, "name": "fyst-to-cornell-via-cologne", "origin_location_id": 2,
     "destination_location_id": 5, "route_type": "relay", "via_site_id": 2, "method": "bbcp"},
    {"id": 3, "name": "fyst-to-s3", "origin_location_id": 2, "destination_location_id": 4,
     "route_type": "direct", "via_site_id": None, "method": "s3"},
]  # fmt: skip

# Parents before children, so foreign keys hold at every step.
SEED = [
    (Site, SITES), (Observatory, OBSERVATORIES), (Telescope, TELESCOPES),
    (Instrument, INSTRUMENTS), (InstrumentModule, MODULES),
    (InstrumentModuleConfiguration, MODULE_CONFIGURATIONS), (ObservingProgram, PROGRAMS),
    (SubObservingProgram, SUB_PROGRAMS), (ObservationMode, MODES),
    (ObservationConfiguration, CONFIGURATIONS), (Source, SOURCES), (ObsUnit, OBS_UNITS),
    (DataLocation, LOCATIONS), (DataTransferRoute, ROUTES),
]  # fmt: skip


async def _upsert(conn: Any, model: Any, rows: list[dict[str, Any]]) -> None:
    table = model.__table__
    statement = insert(table).values(rows)
    provided = set(rows[0])
    updates = {c: statement.excluded[c] for c in provided if c != "id"}
    await conn.execute(statement.on_conflict_do_update(index_elements=["id"], set_=updates))
    # Keep the id sequence ahead of the fixed ids so rows added later get fresh ones.
    await conn.execute(
        sa.text(
            f"SELECT setval(pg_get_serial_sequence('{table.name}', 'id'),"  # noqa: S608
            f" (SELECT max(id) FROM {table.name}))"
        )
    )


async def seed(db: PrimaryDatabase) -> None:
    async with db.begin() as conn:
        for model, rows in SEED:
            await _upsert(conn, model, rows)
