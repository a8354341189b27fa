"""What a merged read asks for, in terms both of its sides evaluate alike: each condition is
a SQL clause for the replica and a test for overlay records, each order an ORDER BY and a sort
key with the same rules (NULLs last, text in code-point order, id as the tiebreaker), and a
``Page`` is what comes back. The replica's side of a read runs here too, as SQL over a
connection the reader opens.
"""

from __future__ import annotations

import functools
import heapq
import itertools
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql
from sqlalchemy.ext.asyncio import AsyncConnection

Row = dict[str, Any]


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


def sort_key(order: Sequence[OrderBy]) -> Callable[[Row], Any]:
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


def order_clauses(table: sa.Table, order: Sequence[OrderBy]) -> list[sa.ColumnElement[Any]]:
    clauses: list[sa.ColumnElement[Any]] = []
    for spec in [*order, OrderBy("id")]:
        column: sa.ColumnElement[Any] = table.c[spec.column]
        if isinstance(table.c[spec.column].type, sa.String):
            column = column.collate("C")
        clauses.append((column.desc() if spec.descending else column.asc()).nulls_last())
    return clauses


def merged_page(
    replica_rows: list[Row],
    overlay_rows: list[Row],
    order: Sequence[OrderBy],
    *,
    total: int,
    limit: int,
    offset: int,
) -> Page:
    """One page of both sides: the replica's rows (already in order) and the overlay's,
    merged in the same order."""
    key = sort_key(order)
    merged = heapq.merge(replica_rows, sorted(overlay_rows, key=key), key=key)
    items = list(itertools.islice(merged, offset, offset + limit))
    return Page(items=items, total=total, limit=limit, offset=offset)


async def count_rows(
    conn: AsyncConnection, table: sa.Table, clauses: Sequence[sa.ColumnElement[bool]]
) -> int:
    return int(
        await conn.scalar(sa.select(sa.func.count()).select_from(table).where(*clauses)) or 0
    )


async def first_rows(
    conn: AsyncConnection,
    table: sa.Table,
    clauses: Sequence[sa.ColumnElement[bool]],
    order: Sequence[OrderBy],
    limit: int,
) -> list[Row]:
    """The first ``limit`` rows matching ``clauses`` in ``order``: a page's replica side."""
    result = await conn.execute(
        sa.select(table).where(*clauses).order_by(*order_clauses(table, order)).limit(limit)
    )
    return [dict(r._mapping) for r in result]


async def rows_by_id(conn: AsyncConnection, table: sa.Table, pks: Sequence[str]) -> dict[str, Row]:
    if not pks:
        return {}
    id_type = table.c.id.type.python_type
    ids = sa.bindparam("ids", [id_type(pk) for pk in pks], type_=postgresql.ARRAY(table.c.id.type))
    result = await conn.execute(sa.select(table).where(table.c.id == sa.any_(ids)))
    return {str(r.id): dict(r._mapping) for r in result}
