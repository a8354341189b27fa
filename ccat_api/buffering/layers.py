"""The overlay's layer format, written where writes are accepted (``buffer``, and ``ledger``
when a dead letter is re-buffered) and read where reads merge (``overlay``): one layer
``tx_id|seq|op|json`` per pending transaction that touches a record.

A module of its own so the accept side and the read side share the format without either
importing the other."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import orjson

from ccat_api.buffering.catalog import buffered
from ccat_api.buffering.envelope import Envelope, Op, Step
from ccat_api.buffering.keys import FOLD_ENTRY, ORDER_ENTRY_PREFIX

# The columns list endpoints sort buffered records by by default: a plain insert is filed in
# a sorted set per column, so a page walks only as far as it shows (reads.py). Each costs
# Redis memory per buffered record (about 100 bytes); a page sorted by another column is read
# by folding every record its filter names.
ORDERED_COLUMNS: dict[str, tuple[str, ...]] = {
    "executed_obs_units": ("start_time",),
    "raw_data_files": ("created_at",),
    "raw_data_packages": ("created_at",),
    "physical_copies": ("created_at",),
    "data_transfers": ("created_at",),
    "data_transfer_logs": ("logged_at",),
}
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_MICROSECOND = timedelta(microseconds=1)


def order_score(value: Any) -> int | float | None:
    """A sorted-set score that orders as the value does: datetimes as exact microseconds
    since the epoch (below 2**53, so a double holds them exactly), numbers as themselves."""
    if isinstance(value, datetime):
        aware = value if value.tzinfo is not None else value.replace(tzinfo=UTC)
        return (aware - _EPOCH) // _MICROSECOND
    if isinstance(value, int | float) and not isinstance(value, bool):
        return value
    return None


def order_entries(step: Step) -> list[str]:
    """Where the step's record is filed beyond its index entries: a plain insert with every
    ordered column set goes in each column's sorted set; anything else (an update, a delete,
    a missing value) marks the record as one a read must fold (FOLD_ENTRY)."""
    columns = ORDERED_COLUMNS.get(step.model, ())
    if step.op is not Op.INSERT:
        return [FOLD_ENTRY]
    codec = buffered(step.model).codec
    entries = []
    for column in columns:
        score = order_score(codec.decode_value(column, step.values.get(column)))
        if score is None:
            return [FOLD_ENTRY]
        entries.append(f"{ORDER_ENTRY_PREFIX}{column}@{score}")
    return entries


def overlay_plan(envelope: Envelope) -> bytes:
    """What the accept and retry scripts need, with each layer's JSON already encoded here:
    Lua's cjson would round numbers to 14 digits if it re-encoded values."""
    return orjson.dumps(
        {
            "touched": envelope.touched_keys(),
            "steps": [
                {
                    "model": step.model,
                    "pk": step.pk,
                    "op": step.op.value,
                    "layer": orjson.dumps(step.values).decode(),
                    "refs": [[r.model, r.pk] for r in step.refs],
                    "index": [*step.index, *order_entries(step)],
                    "unique": list(step.unique),
                }
                for step in envelope.steps
            ],
        }
    )


@dataclass(frozen=True, slots=True)
class Layer:
    tx_id: str
    seq: int
    op: Op
    values: dict[str, Any]


def parse_layers(raw: str | bytes) -> list[Layer]:
    text = raw.decode() if isinstance(raw, bytes) else raw
    layers = []
    for line in text.split("\n"):
        tx_id, seq, op, values = line.split("|", 3)
        layers.append(Layer(tx_id, int(seq), Op(op), orjson.loads(values)))
    return layers
