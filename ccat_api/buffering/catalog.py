"""Which tables critical writes may touch, and how the overlay files their records.

The catalog is derived from the SQLAlchemy tables so a new column or foreign key needs no
second declaration: references come from foreign keys, uniqueness from unique constraints.
Only the index columns (what list endpoints filter by) are chosen here.
"""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import Table, UniqueConstraint

from ccat_api.db import models
from ccat_api.db.codec import RowCodec


@dataclass(frozen=True)
class BufferedModel:
    name: str
    table: Table
    codec: RowCodec
    # Columns that list reads filter by; the overlay keeps a set of record ids per value.
    indexed: tuple[str, ...]
    # Single-column unique constraints, claimed atomically in the overlay at accept.
    unique: tuple[str, ...]
    # Foreign-key column -> referenced table.
    references: dict[str, str]
    # Position in the parents-first order of the schema; the fast replay path sorts by it.
    rank: int


def _unique_columns(table: Table) -> tuple[str, ...]:
    found = [
        next(iter(c.columns)).name
        for c in table.constraints
        if isinstance(c, UniqueConstraint) and len(c.columns) == 1
    ]
    found += [c.name for c in table.columns if c.unique]
    return tuple(dict.fromkeys(found))


def _describe(table: Table, indexed: tuple[str, ...]) -> BufferedModel:
    order = [t.name for t in models.Base.metadata.sorted_tables]
    return BufferedModel(
        name=table.name,
        table=table,
        codec=RowCodec(table),
        indexed=indexed,
        unique=_unique_columns(table),
        references={fk.parent.name: fk.column.table.name for fk in table.foreign_keys},
        rank=order.index(table.name),
    )


BUFFERED: dict[str, BufferedModel] = {
    m.name: m
    for m in (
        _describe(models.ExecutedObsUnit.__table__, ("obs_unit_id",)),  # type: ignore[arg-type]
        _describe(
            models.RawDataPackage.__table__,  # type: ignore[arg-type]
            ("executed_obs_unit_id", "status"),
        ),
        _describe(
            models.RawDataFile.__table__,  # type: ignore[arg-type]
            ("executed_obs_unit_id", "raw_data_package_id"),
        ),
        _describe(
            models.PhysicalCopy.__table__,  # type: ignore[arg-type]
            ("raw_data_package_id", "data_location_id"),
        ),
        _describe(
            models.DataTransfer.__table__,  # type: ignore[arg-type]
            ("raw_data_package_id", "route_id", "status"),
        ),
        _describe(
            models.DataTransferLog.__table__,  # type: ignore[arg-type]
            ("data_transfer_id",),
        ),
    )
}


def buffered(name: str) -> BufferedModel:
    try:
        return BUFFERED[name]
    except KeyError:
        raise KeyError(f"{name!r} is not a buffered model") from None
