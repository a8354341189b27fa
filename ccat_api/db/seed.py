"""Reference data for the demo, the tests and a fresh development database.

Idempotent (rows are upserted by their fixed ids), so the stack can seed on every start.
The values follow the real observatory: FYST on Cerro Chajnantor with Prime-Cam and CHAI.
"""

from __future__ import annotations

from typing import Any

import sqlalchemy as sa
from sqlalchemy.dialects.postgresql import insert

from ccat_api.db.engines import PrimaryDatabase
from ccat_api.db.models import Instrument, InstrumentModule, ObservingProgram, ObsUnit, Site

SITES = [
    {
        "id": 1,
        "name": "Fred Young Submillimeter Telescope",
        "short_name": "fyst",
        "description": "CCAT observatory on Cerro Chajnantor, Chile",
        "latitude_deg": -22.98556,
        "longitude_deg": -67.74028,
        "elevation_m": 5611.8,
    },
]

INSTRUMENTS = [
    {"id": 1, "name": "Prime-Cam", "instrument_type": "camera", "site_id": 1,
     "description": "Wide-field broadband and spectroscopic camera"},
    {"id": 2, "name": "CHAI", "instrument_type": "heterodyne", "site_id": 1,
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

PROGRAMS = [
    {"id": 1, "short_name": "deep56", "name": "Deep wide-field survey (Deep56)"},
    {"id": 2, "short_name": "eor", "name": "Epoch of Reionization line intensity mapping"},
    {"id": 3, "short_name": "gal-cii", "name": "Galactic [CII] mapping"},
]

OBS_UNITS = [
    {"id": 1, "name": "deep56-raster-001", "observing_program_id": 1, "instrument_id": 1},
    {"id": 2, "name": "deep56-raster-002", "observing_program_id": 1, "instrument_id": 1},
    {"id": 3, "name": "eor-cosmos-001", "observing_program_id": 2, "instrument_id": 1},
    {"id": 4, "name": "cii-orion-otf-001", "observing_program_id": 3, "instrument_id": 2},
    {"id": 5, "name": "cii-m17-otf-001", "observing_program_id": 3, "instrument_id": 2},
]


async def _upsert(conn: Any, model: Any, rows: list[dict[str, Any]]) -> None:
    table = model.__table__
    statement = insert(table).values(rows)
    updates = {c.name: statement.excluded[c.name] for c in table.columns if c.name != "id"}
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
        await _upsert(conn, Site, SITES)
        await _upsert(conn, Instrument, INSTRUMENTS)
        await _upsert(conn, InstrumentModule, MODULES)
        await _upsert(conn, ObservingProgram, PROGRAMS)
        await _upsert(conn, ObsUnit, OBS_UNITS)
