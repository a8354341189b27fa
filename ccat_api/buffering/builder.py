"""Builds transaction envelopes with pre-generated ids (the accept path's first stage).

Every new record gets its UUIDv7 primary key here, so the client receives final ids at once
and later steps, or later requests, can reference them before main has seen anything. The
builder derives each step's foreign-key references, overlay index entries and unique claims
from the catalog; callers only say what to insert, update or delete.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any
from uuid import UUID

from ccat_api.buffering.catalog import BUFFERED, BufferedModel, buffered
from ccat_api.buffering.envelope import Envelope, Op, Principal, RecordRef, Step, new_uuid7


@dataclass(frozen=True)
class PreparedWrite:
    """A critical write, built: its envelope, the id of the record it is about (the answer's
    ``id``) and every record it creates (``ids``)."""

    envelope: Envelope
    id: UUID
    created: list[UUID]


def unique_entry(column: str, encoded_value: Any) -> str:
    """Unique values (file paths, names) may hold any character; the overlay files a digest."""
    digest = hashlib.sha1(str(encoded_value).encode(), usedforsecurity=False).hexdigest()[:24]
    return f"{column}={digest}"


def index_entry(column: str, encoded_value: Any) -> str:
    return f"{column}={encoded_value}"


class TransactionBuilder:
    def __init__(
        self,
        site: str,
        principal: Principal,
        *,
        idempotency_key: str | None = None,
        now: datetime | None = None,
    ) -> None:
        self.site = site
        self.principal = principal
        self.idempotency_key = idempotency_key
        self.tx_id = str(new_uuid7())
        self.now = now or datetime.now(UTC)
        self._steps: list[Step] = []

    def insert(self, model: str, values: Mapping[str, Any]) -> UUID:
        spec = buffered(model)
        pk = values.get("id") or new_uuid7()
        row = {k: v for k, v in values.items() if k != "id"}
        self._check_columns(spec, row)
        encoded = spec.codec.encode(row)
        self._steps.append(
            Step(
                op=Op.INSERT,
                model=model,
                pk=str(pk),
                values=encoded,
                refs=self._refs(spec, encoded),
                index=self._index(spec, encoded),
                unique=tuple(
                    unique_entry(c, encoded[c]) for c in spec.unique if encoded.get(c) is not None
                ),
            )
        )
        return pk if isinstance(pk, UUID) else UUID(str(pk))

    def update(
        self, model: str, pk: UUID | str, changes: Mapping[str, Any], current: Mapping[str, Any]
    ) -> None:
        """``current`` is the record as reads see it now; its indexed values keep the record
        findable under the old values until the update is visible everywhere."""
        spec = buffered(model)
        self._check_columns(spec, changes)
        encoded = spec.codec.encode(changes)
        before = spec.codec.encode({c: current.get(c) for c in spec.indexed})
        self._steps.append(
            Step(
                op=Op.UPDATE,
                model=model,
                pk=str(pk),
                values=encoded,
                refs=self._refs(spec, encoded),
                index=tuple(dict.fromkeys(self._index(spec, before) + self._index(spec, encoded))),
                unique=tuple(
                    unique_entry(c, encoded[c])
                    for c in spec.unique
                    if c in encoded and encoded[c] is not None
                ),
                # Reads leave the version out of a record with buffered changes (overlay).
                base=current.get("row_version"),
            )
        )

    def delete(self, model: str, pk: UUID | str, current: Mapping[str, Any]) -> None:
        spec = buffered(model)
        before = spec.codec.encode({c: current.get(c) for c in spec.indexed})
        self._steps.append(
            Step(op=Op.DELETE, model=model, pk=str(pk), index=self._index(spec, before))
        )

    def build(self) -> Envelope:
        if not self._steps:
            raise ValueError("a transaction needs at least one step")
        return Envelope(
            tx_id=self.tx_id,
            site=self.site,
            principal=self.principal,
            created_at=self.now.isoformat(),
            steps=tuple(self._steps),
            idempotency_key=self.idempotency_key,
        )

    @staticmethod
    def _check_columns(spec: BufferedModel, values: Mapping[str, Any]) -> None:
        unknown = set(values) - spec.codec.columns
        if unknown:
            raise ValueError(f"{spec.name} has no columns {sorted(unknown)}")

    @staticmethod
    def _refs(spec: BufferedModel, encoded: Mapping[str, Any]) -> tuple[RecordRef, ...]:
        # Only references to buffered models can point at a still-pending record; reference
        # data (obs units, modules) is validated by the caller against the replica.
        return tuple(
            RecordRef(target, str(encoded[column]))
            for column, target in spec.references.items()
            if encoded.get(column) is not None and target in BUFFERED
        )

    @staticmethod
    def _index(spec: BufferedModel, encoded: Mapping[str, Any]) -> tuple[str, ...]:
        return tuple(index_entry(c, encoded[c]) for c in spec.indexed if encoded.get(c) is not None)
