"""What main's apply functions are sent for a batch: the wire form of transactions, shared by
the replay (``executor``) and the main site's direct apply (``direct``), so both send main
the same thing and neither imports the other."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence
from typing import Any

from ccat_api.buffering.catalog import BUFFERED
from ccat_api.buffering.envelope import BufferedTransaction, Op


def build_payload(txs: Sequence[BufferedTransaction], *, fast: bool = True) -> dict[str, Any]:
    """Set-based groups for the fast path (``fast``), or each transaction's steps for the
    careful path, which main asks for (``needs_steps``) when the fast path cannot be used.

    Grouping is safe because every foreign key points from a lower to a higher rank in the
    schema's dependency order: inserts run parents first, then updates (coalesced per row),
    then deletes children first. Updates of a row inserted in the same batch are folded into
    the inserted row.
    """
    inserts: dict[str, dict[str, dict[str, Any]]] = defaultdict(dict)
    updates: dict[str, dict[str, dict[str, Any]]] = defaultdict(dict)
    deletes: dict[str, list[str]] = defaultdict(list)
    payload_txs = []
    for tx in txs:
        entry: dict[str, Any] = {"tx_id": tx.envelope.tx_id, "seq": tx.seq, "deps": list(tx.deps)}
        if tx.envelope.idempotency is not None:
            entry["idem"] = {**tx.envelope.idempotency, "key": tx.envelope.idempotency_key}
        payload_txs.append(entry)
        if not fast:
            entry["steps"] = [
                {"op": step.op.value, "model": step.model, "row": step.row()}
                for step in tx.envelope.steps
            ]
            continue
        for step in tx.envelope.steps:
            if step.op is Op.INSERT:
                inserts[step.model][step.pk] = step.row()
            elif step.op is Op.UPDATE:
                if step.pk in inserts[step.model]:
                    inserts[step.model][step.pk].update(step.values)
                else:
                    row = updates[step.model].setdefault(step.pk, {"id": step.pk})
                    row.update(step.values)
                    if step.base is not None:
                        row.setdefault("row_version", step.base)
            else:
                deletes[step.model].append(step.pk)
    # Main checks each version against its contract before it writes anything.
    versions = sorted({tx.envelope.schema_version for tx in txs})
    if not fast:
        return {"txs": payload_txs, "versions": versions}

    def rank(model: str) -> int:
        return BUFFERED[model].rank

    groups: list[dict[str, Any]] = []
    for model in sorted(inserts, key=rank):
        groups += _group_by_columns(model, "insert", inserts[model].values())
    for model in sorted(updates, key=rank):
        groups += _group_by_columns(model, "update", updates[model].values())
    for model in sorted(deletes, key=rank, reverse=True):
        groups.append(
            {
                "model": model,
                "op": "delete",
                "columns": ["id"],
                "rows": [{"id": pk} for pk in dict.fromkeys(deletes[model])],
            }
        )
    return {"txs": payload_txs, "versions": versions, "groups": groups}


def _group_by_columns(model: str, op: str, rows: Any) -> list[dict[str, Any]]:
    by_columns: dict[tuple[str, ...], list[dict[str, Any]]] = defaultdict(list)
    for row in rows:
        by_columns[tuple(sorted(row))].append(row)
    return [
        {"model": model, "op": op, "columns": list(columns), "rows": group}
        for columns, group in by_columns.items()
    ]
