"""Reference data (obs units, instrument modules) for validating writes, cached in-process.

Reference data changes rarely and only at main; a short TTL keeps validation off the database
on the write path without serving stale data for long.
"""

from __future__ import annotations

from collections.abc import Callable, Hashable
from dataclasses import dataclass
from typing import Any, TypeVar

import sqlalchemy as sa
from cachetools import TTLCache

from ccat_api.db.engines import ReadDatabase
from ccat_api.db.models import Base, Instrument, InstrumentModule, ObsUnit

K = TypeVar("K", bound=Hashable)
V = TypeVar("V")


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
        ttl = max(ttl_s, 0.001)
        self._rows: TTLCache[tuple[str, int], dict[str, Any]] = TTLCache(maxsize=100_000, ttl=ttl)
        self._obs_units: TTLCache[int, ObsUnitRef] = TTLCache(maxsize=100_000, ttl=ttl)
        self._modules: TTLCache[int, InstrumentModuleRef] = TTLCache(maxsize=10_000, ttl=ttl)

    async def row(self, table_name: str, row_id: int) -> dict[str, Any] | None:
        """Any reference row by id (routes, data locations...), cached; None if absent."""
        table = Base.metadata.tables[table_name]
        return await self._cached(
            self._rows,
            (table_name, row_id),
            lambda: sa.select(table).where(table.c.id == row_id),
            lambda r: dict(r._mapping),
        )

    async def obs_unit(self, obs_unit_id: int) -> ObsUnitRef | None:
        return await self._cached(
            self._obs_units,
            obs_unit_id,
            lambda: (
                sa.select(ObsUnit.id, ObsUnit.instrument_id, Instrument.site_id)
                .join(Instrument, Instrument.id == ObsUnit.instrument_id)
                .where(ObsUnit.id == obs_unit_id)
            ),
            lambda r: ObsUnitRef(id=r.id, instrument_id=r.instrument_id, site_id=r.site_id),
        )

    async def instrument_module(self, module_id: int) -> InstrumentModuleRef | None:
        return await self._cached(
            self._modules,
            module_id,
            lambda: sa.select(InstrumentModule.id, InstrumentModule.instrument_id).where(
                InstrumentModule.id == module_id
            ),
            lambda r: InstrumentModuleRef(id=r.id, instrument_id=r.instrument_id),
        )

    async def _cached(
        self,
        cache: TTLCache[K, V],
        key: K,
        query: Callable[[], sa.Executable],
        make: Callable[[Any], V],
    ) -> V | None:
        """The cached value, or the one row ``query`` finds (built only on a miss, since this
        runs on every write) made into one and kept. An absent row is not kept, so a record
        made at main a moment ago is found once it has replicated here."""
        found = cache.get(key)
        if found is None:
            async with self._db.connect() as conn:
                row = (await conn.execute(query())).one_or_none()
            if row is None:
                return None
            found = make(row)
            cache[key] = found
        return found
