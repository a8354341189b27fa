"""Reads at a secondary site: the local replica merged with the overlay.

The same filter is evaluated on replica rows (as SQL) and on overlay records (in Python);
the overlay wins by primary key; the merged result is sorted with the same ordering rules on
both sides (NULLs last, text in code-point order via COLLATE "C", id as the tiebreaker) and
then paginated. The overlay is read before the replica: a record that leaves the overlay in
between has, by then, been replayed on the replica (the tracker drops it only after that),
so it is never missed and never counted twice.

A page filtered by indexed equalities and sorted by an indexed column costs what it shows,
not the backlog: the overlay counts its plain inserts and walks them in order, folds only
the records with later layers, and names the few records already handed to the processor,
the only ones the replica can hold too (``_indexed_page``). Other reads fold every record the
filter names and keep all of them out of the replica's side.
"""

from __future__ import annotations

import functools
import heapq
import itertools
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any
from uuid import UUID

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql
from sqlalchemy.ext.asyncio import AsyncConnection

from ccat_api.buffering.catalog import BUFFERED
from ccat_api.buffering.overlay import Overlay, OverlayRecord
from ccat_api.db.engines import ReadDatabase
from ccat_api.db.models import Base

Row = dict[str, Any]

# A page deeper than this (offset + limit) is read by folding every record the filter names.
FAST_PAGE_MOST_WANTED = 2_000
# Reads of a page from the overlay's indexes before falling back to folding every record
# (each retry follows a batch handed to the processor during the read).
FAST_PAGE_ATTEMPTS = 3


@dataclass(frozen=True, slots=True)
class Eq:
    column: str
    value: Any

    def clause(self, table: sa.Table) -> sa.ColumnElement[bool]:
        clause: sa.ColumnElement[bool] = _column(table, self.column) == self.value
        return clause

    def matches(self, row: Mapping[str, Any]) -> bool:
        return bool(row.get(self.column) == self.value)


@dataclass(frozen=True, slots=True)
class AtLeast:
    column: str
    value: Any

    def clause(self, table: sa.Table) -> sa.ColumnElement[bool]:
        clause: sa.ColumnElement[bool] = _column(table, self.column) >= self.value
        return clause

    def matches(self, row: Mapping[str, Any]) -> bool:
        value = row.get(self.column)
        return value is not None and bool(value >= self.value)


@dataclass(frozen=True, slots=True)
class Below:
    column: str
    value: Any

    def clause(self, table: sa.Table) -> sa.ColumnElement[bool]:
        clause: sa.ColumnElement[bool] = _column(table, self.column) < self.value
        return clause

    def matches(self, row: Mapping[str, Any]) -> bool:
        value = row.get(self.column)
        return value is not None and bool(value < self.value)


@dataclass(frozen=True, slots=True)
class OneOf:
    column: str
    values: tuple[Any, ...]

    def clause(self, table: sa.Table) -> sa.ColumnElement[bool]:
        clause: sa.ColumnElement[bool] = _column(table, self.column).in_(self.values)
        return clause

    def matches(self, row: Mapping[str, Any]) -> bool:
        return row.get(self.column) in self.values


@dataclass(frozen=True, slots=True)
class NameLike:
    """Case-insensitive substring match, the same on both sides (ILIKE with escaping)."""

    column: str
    text: str

    def clause(self, table: sa.Table) -> sa.ColumnElement[bool]:
        escaped = self.text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
        clause: sa.ColumnElement[bool] = _column(table, self.column).ilike(
            f"%{escaped}%", escape="\\"
        )
        return clause

    def matches(self, row: Mapping[str, Any]) -> bool:
        value = row.get(self.column)
        return value is not None and self.text.lower() in str(value).lower()


Condition = Eq | AtLeast | Below | OneOf | NameLike


def _column(table: sa.Table, name: str) -> sa.ColumnElement[Any]:
    column: sa.ColumnElement[Any] = table.c[name]
    return column


@dataclass(frozen=True, slots=True)
class OrderBy:
    column: str
    descending: bool = False


@dataclass(frozen=True, slots=True)
class Page:
    items: list[Row]
    total: int
    limit: int
    offset: int


def _sort_key(order: Sequence[OrderBy]) -> Callable[[Row], Any]:
    """Python ordering identical to the SQL one: NULLs last either way, then id ascending."""
    columns = [*order, OrderBy("id")]

    def compare(a: Row, b: Row) -> int:
        for spec in columns:
            x, y = a.get(spec.column), b.get(spec.column)
            if x == y:
                continue
            if x is None:
                return 1
            if y is None:
                return -1
            result = -1 if x < y else 1
            return -result if spec.descending else result
        return 0

    return functools.cmp_to_key(compare)


def _order_clauses(table: sa.Table, order: Sequence[OrderBy]) -> list[sa.ColumnElement[Any]]:
    clauses: list[sa.ColumnElement[Any]] = []
    for spec in [*order, OrderBy("id")]:
        column: sa.ColumnElement[Any] = table.c[spec.column]
        if isinstance(table.c[spec.column].type, sa.String):
            column = column.collate("C")
        clauses.append((column.desc() if spec.descending else column.asc()).nulls_last())
    return clauses


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
        fast = self._page_by_index(model, where, order, offset + limit)
        if fast is not None:
            for _ in range(FAST_PAGE_ATTEMPTS):
                page = await self._indexed_page(model, where, order, fast, limit, offset)
                if page is not None:
                    return page
        table = Base.metadata.tables[model]
        buffered_rows, clauses = await self._split(model, where)
        async with self._db.connect() as conn:
            total = int(
                await conn.scalar(sa.select(sa.func.count()).select_from(table).where(*clauses))
                or 0
            )
            result = await conn.execute(
                sa.select(table)
                .where(*clauses)
                .order_by(*_order_clauses(table, order))
                .limit(offset + limit)
            )
            replica_rows = [dict(r._mapping) for r in result]
        key = _sort_key(order)
        merged = heapq.merge(replica_rows, sorted(buffered_rows, key=key), key=key)
        items = list(itertools.islice(merged, offset, offset + limit))
        return Page(items=items, total=total + len(buffered_rows), limit=limit, offset=offset)

    def _page_by_index(
        self, model: str, where: Sequence[Condition], order: Sequence[OrderBy], wanted: int
    ) -> tuple[list[str], OrderBy] | None:
        """The index entries and order of a page the overlay can serve from its indexes: every
        condition an equality on an indexed column, one order column with a sorted set."""
        if not self._buffered(model) or len(order) != 1 or wanted > FAST_PAGE_MOST_WANTED:
            return None
        if not Overlay.ordered(model, order[0].column):
            return None
        spec = BUFFERED[model]
        entries = []
        for c in where:
            if not (isinstance(c, Eq) and c.column in spec.indexed and c.value is not None):
                return None
            entries.append(f"{c.column}={spec.codec.encode_value(c.column, c.value)}")
        return entries, order[0]

    async def _indexed_page(
        self,
        model: str,
        where: Sequence[Condition],
        order: Sequence[OrderBy],
        fast: tuple[list[str], OrderBy],
        limit: int,
        offset: int,
    ) -> Page | None:
        """A page whose cost follows the page, not the backlog: the overlay gives its first
        plain inserts in order, their count, the records to fold and those that may already
        be replica rows (in flight); only the latter are kept out of the replica's side.
        None when the processor was handed work between the overlay read and the replica's
        (a record could then be on both sides): read again."""
        assert self._overlay is not None
        entries, by = fast
        wanted = offset + limit
        snap = await self._overlay.page_snapshot(
            model, entries, by.column, descending=by.descending, wanted=wanted
        )
        if snap is None:
            return None
        table = Base.metadata.tables[model]
        key = _sort_key(order)
        records = {**snap.plain, **snap.folded}
        # Folded: marked so, or (buffered before the marks existed) more than one insert.
        folded = snap.folded.keys() | {
            pk for pk, r in snap.plain.items() if r.needs_base or len(r.layers) > 1
        }
        shadowed = sorted(snap.in_flight | folded)
        clauses = [c.clause(table) for c in where]
        async with self._db.connect() as conn:
            bases = await _rows_by_id(conn, table, [pk for pk in folded if records[pk].needs_base])
            if shadowed:
                ids = sa.bindparam(
                    "shadowed",
                    [BUFFERED[model].codec.decode_value("id", pk) for pk in shadowed],
                    type_=postgresql.ARRAY(table.c.id.type),
                )
                is_shadowed = table.c.id == sa.any_(ids)
                counted = (
                    await conn.execute(
                        sa.select(sa.func.count(), sa.func.count().filter(is_shadowed))
                        .select_from(table)
                        .where(*clauses)
                    )
                ).one()
                replica_total = int(counted[0]) - int(counted[1])
                clauses.append(sa.not_(is_shadowed))
            else:
                replica_total = int(
                    await conn.scalar(sa.select(sa.func.count()).select_from(table).where(*clauses))
                    or 0
                )
            result = await conn.execute(
                sa.select(table)
                .where(*clauses)
                .order_by(*_order_clauses(table, order))
                .limit(wanted)
            )
            replica_rows = [dict(r._mapping) for r in result]
        if await self._overlay.delivered() != snap.delivered:
            return None
        overlay_rows = []
        for pk, record in records.items():
            state = record.fold(bases.get(pk) if record.needs_base else None)
            if state is not None and all(c.matches(state) for c in where):
                overlay_rows.append(state)
        if snap.complete:
            overlay_total = len(overlay_rows)
        else:
            overlay_total = snap.plain_total + (len(overlay_rows) - len(snap.plain))
        merged = heapq.merge(replica_rows, sorted(overlay_rows, key=key), key=key)
        items = list(itertools.islice(merged, offset, offset + limit))
        return Page(items=items, total=replica_total + overlay_total, limit=limit, offset=offset)

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
        entries = [
            f"{c.column}={spec.codec.encode_value(c.column, c.value)}"
            for c in where
            if isinstance(c, Eq) and c.column in spec.indexed and c.value is not None
        ]
        if entries:
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
            return await _rows_by_id(conn, Base.metadata.tables[model], pks)

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


async def _rows_by_id(conn: AsyncConnection, table: sa.Table, pks: Sequence[str]) -> dict[str, Row]:
    if not pks:
        return {}
    id_type = table.c.id.type.python_type
    ids = sa.bindparam("ids", [id_type(pk) for pk in pks], type_=postgresql.ARRAY(table.c.id.type))
    result = await conn.execute(sa.select(table).where(table.c.id == sa.any_(ids)))
    return {str(r.id): dict(r._mapping) for r in result}
