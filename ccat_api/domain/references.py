"""Reference data (obs units, instrument modules) for validating writes, cached in-process.

Reference data changes rarely and only at main; a short TTL keeps validation off the database
on the write path without serving stale data for long.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import sqlalchemy as sa
from cachetools import TTLCache

from ccat_api.db.engines import ReadDatabase
from ccat_api.db.models import Base, Instrument, InstrumentModule, ObsUnit


@dataclass(frozen=True, slots=True)
class ObsUnitRef:
    id: int
    instrument_id: int
    site_id: int


@dataclass(frozen=True, slots=True)
class InstrumentModuleRef:
    id: int
    instrument_id: int


class ReferenceData:
    def __init__(self, db: ReadDatabase, *, ttl_s: float) -> None:
        self._db = db
        self._rows: TTLCache[tuple[str, int], dict[str, Any]] = TTLCache(
            maxsize=100_000, ttl=max(ttl_s, 0.001)
        )
        self._obs_units: TTLCache[int, ObsUnitRef] = TTLCache(
            maxsize=100_000, ttl=max(ttl_s, 0.001)
        )
        self._modules: TTLCache[int, InstrumentModuleRef] = TTLCache(
            maxsize=10_000, ttl=max(ttl_s, 0.001)
        )

    async def row(self, table_name: str, row_id: int) -> dict[str, Any] | None:
        """Any reference row by id (routes, data locations...), cached; None if absent."""
        key = (table_name, row_id)
        found = self._rows.get(key)
        if found is None:
            table = Base.metadata.tables[table_name]
            async with self._db.connect() as conn:
                row = (
                    await conn.execute(sa.select(table).where(table.c.id == row_id))
                ).one_or_none()
            if row is None:
                return None
            found = dict(row._mapping)
            self._rows[key] = found
        return found

    async def obs_unit(self, obs_unit_id: int) -> ObsUnitRef | None:
        found = self._obs_units.get(obs_unit_id)
        if found is None:
            async with self._db.connect() as conn:
                row = (
                    await conn.execute(
                        sa.select(ObsUnit.id, ObsUnit.instrument_id, Instrument.site_id)
                        .join(Instrument, Instrument.id == ObsUnit.instrument_id)
                        .where(ObsUnit.id == obs_unit_id)
                    )
                ).one_or_none()
            if row is None:
                return None
            found = ObsUnitRef(id=row.id, instrument_id=row.instrument_id, site_id=row.site_id)
            self._obs_units[obs_unit_id] = found
        return found

    async def instrument_module(self, module_id: int) -> InstrumentModuleRef | None:
        found = self._modules.get(module_id)
        if found is None:
            async with self._db.connect() as conn:
                row = (
                    await conn.execute(
                        sa.select(InstrumentModule.id, InstrumentModule.instrument_id).where(
                            InstrumentModule.id == module_id
                        )
                    )
                ).one_or_none()
            if row is None:
                return None
            found = InstrumentModuleRef(id=row.id, instrument_id=row.instrument_id)
            self._modules[module_id] = found
        return found
