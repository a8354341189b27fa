"""A merged page whose cost follows the page, not the backlog: filtered by equalities on
indexed columns and sorted by one column the overlay keeps a sorted index of, it is read from
the overlay's indexes (counts, the first plain inserts in order) and only the records that
need folding or may already be replica rows (handed to the processor) are kept out of the
replica's side. Below ``reads.py``, which falls back to folding every record the filter names.
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql

from ccat_api.buffering.catalog import BUFFERED
from ccat_api.buffering.overlay import Overlay
from ccat_api.buffering.query import (
    Condition,
    Eq,
    OrderBy,
    Page,
    count_rows,
    first_rows,
    merged_page,
    rows_by_id,
)
from ccat_api.db.engines import ReadDatabase
from ccat_api.db.models import Base

# A page deeper than this (offset + limit) is read by folding every record the filter names.
FAST_PAGE_MOST_WANTED = 2_000
# Reads of a page from the overlay's indexes before falling back to folding every record
# (each retry follows a batch handed to the processor during the read).
FAST_PAGE_ATTEMPTS = 3


def index_entries(model: str, where: Sequence[Condition]) -> list[str]:
    """The overlay's index entries (``column=value``) of the equalities on indexed columns."""
    spec = BUFFERED[model]
    return [
        f"{c.column}={spec.codec.encode_value(c.column, c.value)}"
        for c in where
        if isinstance(c, Eq) and c.column in spec.indexed and c.value is not None
    ]


async def indexed_page(
    db: ReadDatabase,
    overlay: Overlay,
    model: str,
    where: Sequence[Condition],
    order: Sequence[OrderBy],
    *,
    limit: int,
    offset: int,
) -> Page | None:
    """The page read through the overlay's indexes, or None where they cannot serve it: a
    condition that is no indexed equality, an order they do not keep, a page too deep, or
    the processor handed work on during every attempt."""
    wanted = offset + limit
    if len(order) != 1 or wanted > FAST_PAGE_MOST_WANTED:
        return None
    if not Overlay.ordered(model, order[0].column):
        return None
    entries = index_entries(model, where)
    if len(entries) != len(where):
        return None
    for _ in range(FAST_PAGE_ATTEMPTS):
        page = await _read_once(db, overlay, model, where, order, entries, limit, offset)
        if page is not None:
            return page
    return None


async def _read_once(
    db: ReadDatabase,
    overlay: Overlay,
    model: str,
    where: Sequence[Condition],
    order: Sequence[OrderBy],
    entries: list[str],
    limit: int,
    offset: int,
) -> Page | None:
    """None when the processor was handed work between the overlay read and the replica's
    (a record could then be on both sides): read again."""
    by = order[0]
    wanted = offset + limit
    snap = await overlay.page_snapshot(
        model, entries, by.column, descending=by.descending, wanted=wanted
    )
    if snap is None:
        return None
    table = Base.metadata.tables[model]
    records = {**snap.plain, **snap.folded}
    # Folded: marked so, or (buffered before the marks existed) more than one insert.
    folded = snap.folded.keys() | {
        pk for pk, r in snap.plain.items() if r.needs_base or len(r.layers) > 1
    }
    shadowed = sorted(snap.in_flight | folded)
    clauses = [c.clause(table) for c in where]
    async with db.connect() as conn:
        bases = await rows_by_id(conn, table, [pk for pk in folded if records[pk].needs_base])
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
            replica_total = await count_rows(conn, table, clauses)
        replica_rows = await first_rows(conn, table, clauses, order, offset + limit)
    if await overlay.delivered() != snap.delivered:
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
    return merged_page(
        replica_rows, overlay_rows, order,
        total=replica_total + overlay_total, limit=limit, offset=offset,
    )  # fmt: skip
