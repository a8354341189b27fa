"""Reads at a secondary site: the local replica merged with the overlay.

The same filter (``query.py``) is evaluated on replica rows (as SQL) and on overlay records;
the overlay wins by primary key; the merged result is sorted with the same ordering rules on
both sides (NULLs last, text in code-point order via COLLATE "C", id as the tiebreaker) and
then paginated. The overlay is read before the replica: a record that leaves the overlay in
between has, by then, been replayed on the replica (the tracker drops it only after that),
so it is never missed and never counted twice.

A page filtered by indexed equalities and sorted by an indexed column costs what it shows,
not the backlog: the overlay counts its plain inserts and walks them in order, folds only
the records with later layers, and names the few records already handed to the processor,
the only ones the replica can hold too (``indexed_pages.py``). Other reads fold every record
the filter names and keep all of them out of the replica's side.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any
from uuid import UUID

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql

from ccat_api.buffering.catalog import BUFFERED
from ccat_api.buffering.indexed_pages import index_entries, indexed_page
from ccat_api.buffering.overlay import Overlay, OverlayRecord
from ccat_api.buffering.query import (
    Condition,
    OrderBy,
    Page,
    Row,
    count_rows,
    first_rows,
    merged_page,
    rows_by_id,
)
from ccat_api.db.engines import ReadDatabase
from ccat_api.db.models import Base


class MergedReader:
    def __init__(self, db: ReadDatabase, overlay: Overlay | None) -> None:
        self._db = db
        self._overlay = overlay

    def _buffered(self, model: str) -> bool:
        return self._overlay is not None and model in BUFFERED

    async def get(self, model: str, pk: UUID | int) -> Row | None:
        found = await self.get_many(model, [pk])
        return found.get(str(pk))

    async def get_many(self, model: str, pks: Sequence[UUID | int]) -> dict[str, Row]:
        """Current state by primary key (str); absent keys do not exist or are deleted."""
        keys = list(dict.fromkeys(str(pk) for pk in pks))
        records: dict[str, OverlayRecord] = {}
        if self._buffered(model) and self._overlay is not None:
            records = await self._overlay.records(model, keys)
        from_replica = [k for k in keys if k not in records or records[k].needs_base]
        rows = await self._replica_rows(model, from_replica)
        found = {k: rows[k] for k in from_replica if k in rows and k not in records}
        for pk, record in records.items():
            state = record.fold(rows.get(pk))
            if state is not None:
                found[pk] = state
        return found

    async def page(
        self,
        model: str,
        where: Sequence[Condition] = (),
        order: Sequence[OrderBy] = (),
        *,
        limit: int,
        offset: int = 0,
    ) -> Page:
        if self._buffered(model) and self._overlay is not None:
            fast = await indexed_page(
                self._db, self._overlay, model, where, order, limit=limit, offset=offset
            )
            if fast is not None:
                return fast
        table = Base.metadata.tables[model]
        buffered_rows, clauses = await self._split(model, where)
        async with self._db.connect() as conn:
            total = await count_rows(conn, table, clauses)
            replica_rows = await first_rows(conn, table, clauses, order, offset + limit)
        return merged_page(
            replica_rows, buffered_rows, order,
            total=total + len(buffered_rows), limit=limit, offset=offset,
        )  # fmt: skip

    async def count_by(
        self, model: str, columns: Sequence[str], where: Sequence[Condition] = ()
    ) -> dict[tuple[Any, ...], int]:
        """How many records (replica and buffer alike) have each combination of values."""
        table = Base.metadata.tables[model]
        buffered_rows, clauses = await self._split(model, where)
        keys = [table.c[c] for c in columns]
        async with self._db.connect() as conn:
            result = await conn.execute(
                sa.select(*keys, sa.func.count()).where(*clauses).group_by(*keys)
            )
            counts = {tuple(row[:-1]): int(row[-1]) for row in result}
        for row in buffered_rows:
            key = tuple(row.get(c) for c in columns)
            counts[key] = counts.get(key, 0) + 1
        return counts

    async def sums(
        self, model: str, columns: Sequence[str], where: Sequence[Condition] = ()
    ) -> dict[str, int]:
        """Totals of integer columns over every matching record (replica and buffer alike),
        summed by the database rather than over a page, so no record is left out."""
        table = Base.metadata.tables[model]
        buffered_rows, clauses = await self._split(model, where)
        async with self._db.connect() as conn:
            row = (
                await conn.execute(
                    sa.select(*(sa.func.coalesce(sa.func.sum(table.c[c]), 0) for c in columns))
                    .select_from(table)
                    .where(*clauses)
                )
            ).one()
        totals = {column: int(value) for column, value in zip(columns, row, strict=True)}
        for buffered_row in buffered_rows:
            for column in columns:
                totals[column] += int(buffered_row.get(column) or 0)
        return totals

    async def _split(
        self, model: str, where: Sequence[Condition]
    ) -> tuple[list[Row], list[sa.ColumnElement[bool]]]:
        """Overlay records matching ``where``, and the replica clauses that select the rest."""
        table = Base.metadata.tables[model]
        buffered_rows: list[Row] = []
        shadowed: list[Any] = []
        if self._buffered(model):
            buffered_rows, shadowed = await self._overlay_matches(model, where)
        clauses = [c.clause(table) for c in where]
        if shadowed:
            ids = sa.bindparam("shadowed", shadowed, type_=postgresql.ARRAY(table.c.id.type))
            clauses.append(table.c.id != sa.all_(ids))
        return buffered_rows, clauses

    async def _overlay_matches(
        self, model: str, where: Sequence[Condition]
    ) -> tuple[list[Row], list[Any]]:
        """Overlay records matching ``where`` and every overlay id that might shadow a replica
        row matching it (their replica versions must not be read)."""
        assert self._overlay is not None
        spec = BUFFERED[model]
        if entries := index_entries(model, where):
            pks = await self._overlay.indexed_pks(model, entries)
            records = await self._overlay.records(model, pks)
        else:
            records = await self._overlay.all_records(model)
        bases = await self._replica_rows(model, [pk for pk, r in records.items() if r.needs_base])
        matches = []
        for pk, record in records.items():
            state = record.fold(bases.get(pk))
            if state is not None and all(c.matches(state) for c in where):
                matches.append(state)
        shadowed = [spec.codec.decode_value("id", pk) for pk in records]
        return matches, shadowed

    async def _replica_rows(self, model: str, pks: Sequence[str]) -> dict[str, Row]:
        if not pks:
            return {}
        async with self._db.connect() as conn:
            return await rows_by_id(conn, Base.metadata.tables[model], pks)

    async def replica_values_taken(
        self, model: str, column: str, values: Sequence[Any]
    ) -> set[Any]:
        """Which of ``values`` replica rows already hold in ``column`` (a unique column; the
        overlay's own holders are checked atomically when the write is buffered)."""
        if not values:
            return set()
        table = Base.metadata.tables[model]
        param = sa.bindparam("values", list(values), type_=postgresql.ARRAY(table.c[column].type))
        async with self._db.connect() as conn:
            result = await conn.execute(
                sa.select(table.c[column]).where(table.c[column] == sa.any_(param))
            )
            return {r[0] for r in result}
