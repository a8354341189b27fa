"""Writes that are never buffered: reference data and everything driven from main (programs,
sources, obs units, locations, routes, archive transfers, staging jobs).

They go to main directly, from any site. At a secondary site that crosses the WAN; the main
connection has a command timeout, so while main is unreachable these requests answer 503 with
Retry-After instead of hanging. A violated constraint becomes a 409/422 naming the column,
read from the constraint's conventional name (``uq_<table>_<column>``, ``fk_<table>_<column>_...``).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import sqlalchemy as sa
from sqlalchemy.exc import IntegrityError

from ccat_api.db.engines import PrimaryDatabase
from ccat_api.db.models import Base
from ccat_api.errors import CcatError, Conflict, NotFound, UniqueConflict, Unprocessable

Row = dict[str, Any]


def _constraint_error(exc: IntegrityError, table: sa.Table) -> CcatError:
    cause = exc.orig.__cause__ if exc.orig is not None else None
    sqlstate = str(getattr(cause, "sqlstate", "") or "")
    constraint = str(getattr(cause, "constraint_name", "") or "")
    column = _column_of(constraint, table)
    if sqlstate == "23505":
        return UniqueConflict(f"{column}: this value is already taken", field=column)
    if sqlstate == "23503":
        if constraint.startswith(f"fk_{table.name}_"):
            return Unprocessable(f"{column}: no such record to refer to", field=column)
        return Conflict(f"{table.name} is still referenced ({constraint}); remove those first")
    if sqlstate == "23514":
        return Unprocessable(f"{constraint}: the values break this rule", field=column)
    if sqlstate == "23502":
        column = str(getattr(cause, "column_name", "") or column)
        return Unprocessable(f"{column}: a value is required", field=column)
    return Unprocessable(f"the values are not acceptable here: {cause or exc}")


def _column_of(constraint: str, table: sa.Table) -> str | None:
    """The column named in a conventional constraint name, if it is one of the table's."""
    for prefix in (f"uq_{table.name}_", f"fk_{table.name}_", f"ck_{table.name}_"):
        if constraint.startswith(prefix):
            rest = constraint[len(prefix) :]
            for column in sorted(table.c.keys(), key=len, reverse=True):
                if rest == column or rest.startswith(column + "_"):
                    return column
    return None


def _table(name: str) -> sa.Table:
    return Base.metadata.tables[name]


async def insert_row(db: PrimaryDatabase, table_name: str, values: Mapping[str, Any]) -> Row:
    table = _table(table_name)
    try:
        async with db.begin() as conn:
            row = (await conn.execute(sa.insert(table).values(**values).returning(table))).one()
    except IntegrityError as exc:
        raise _constraint_error(exc, table) from exc
    return dict(row._mapping)


async def update_row(
    db: PrimaryDatabase, table_name: str, pk: Any, values: Mapping[str, Any]
) -> Row:
    table = _table(table_name)
    try:
        async with db.begin() as conn:
            statement = sa.update(table).where(table.c.id == pk).values(**values).returning(table)
            row = (await conn.execute(statement)).one_or_none()
    except IntegrityError as exc:
        raise _constraint_error(exc, table) from exc
    if row is None:
        raise NotFound(f"{table_name} {pk} not found")
    return dict(row._mapping)


async def delete_row(db: PrimaryDatabase, table_name: str, pk: Any) -> None:
    table = _table(table_name)
    try:
        async with db.begin() as conn:
            deleted = await conn.scalar(
                sa.delete(table).where(table.c.id == pk).returning(table.c.id)
            )
    except IntegrityError as exc:
        raise _constraint_error(exc, table) from exc
    if deleted is None:
        raise NotFound(f"{table_name} {pk} not found")
