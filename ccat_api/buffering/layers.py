"""The overlay's layer format, written where writes are accepted (``buffer``, and ``ledger``
when a dead letter is re-buffered) and read where reads merge (``overlay``): one layer
``tx_id|seq|op|json`` per pending transaction that touches a record.

A module of its own so the accept side and the read side share the format without either
importing the other."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import orjson

from ccat_api.buffering.envelope import Envelope, Op


def overlay_plan(envelope: Envelope) -> bytes:
    """What the accept and retry scripts need, with each layer's JSON already encoded here:
    Lua's cjson would round numbers to 14 digits if it re-encoded values."""
    return orjson.dumps(
        {
            "touched": " ".join(ref.key for ref in envelope.touched()),
            "steps": [
                {
                    "model": step.model,
                    "pk": step.pk,
                    "op": step.op.value,
                    "layer": orjson.dumps(step.values).decode(),
                    "refs": [[r.model, r.pk] for r in step.refs],
                    "index": list(step.index),
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
