"""Writes that are never buffered: reference data and everything driven from main (programs,
sources, obs units, locations, routes, archive transfers, staging jobs).

They go to main directly, from any site. At a secondary site that crosses the WAN; the main
connection has a command timeout, so while main is unreachable these requests answer 503 with
Retry-After instead of hanging. A violated constraint becomes a 409/422 naming the column,
read from the constraint's conventional name (``uq_<table>_<column>``, ``fk_<table>_<column>_...``).
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping
from typing import Any

import sqlalchemy as sa
from sqlalchemy.dialects.postgresql.base import PGDialect
from sqlalchemy.exc import IntegrityError
from sqlalchemy.sql.schema import ColumnCollectionConstraint

from ccat_api.db.engines import PrimaryDatabase
from ccat_api.db.models import Base
from ccat_api.errors import CcatError, Conflict, NotFound, UniqueConflict, Unprocessable

Row = dict[str, Any]
_DDL_NAMES = PGDialect().identifier_preparer  # type: ignore[no-untyped-call]


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
    # A conventional name longer than PostgreSQL's 63 characters was cut short with a hash
    # when the table was made (fk_instrument_module_configurations_instrument_module_i_a019):
    # match the name as it was created, not its prefix.
    for candidate in table.constraints:
        if (
            isinstance(candidate, ColumnCollectionConstraint)
            and candidate.name is not None
            and _DDL_NAMES.format_constraint(candidate) == constraint
            and candidate.columns
        ):
            return str(next(iter(candidate.columns)).name)
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
    db: PrimaryDatabase,
    table_name: str,
    pk: Any,
    values: dict[str, Any],
    check: Callable[[Row], Awaitable[None]] | None = None,
) -> Row:
    """Change one row on main. ``check`` sees the row as main holds it, locked until the
    change commits, so a rule about the current state (a state machine, a source still valid
    for its type) holds against concurrent changes and never against a lagging replica; it
    may complete ``values``."""
    table = _table(table_name)
    try:
        async with db.begin() as conn:
            if check is not None:
                current = (
                    await conn.execute(sa.select(table).where(table.c.id == pk).with_for_update())
                ).one_or_none()
                if current is None:
                    raise NotFound(f"{table_name} {pk} not found")
                await check(dict(current._mapping))
            # An empty patch changes nothing (a merge patch of {} is the identity, RFC 7396):
            # answer with the record as main holds it, or 404; an UPDATE with no SET would
            # not compile.
            statement: sa.Executable = (
                sa.update(table).where(table.c.id == pk).values(**values).returning(table)
                if values
                else sa.select(table).where(table.c.id == pk)
            )
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
