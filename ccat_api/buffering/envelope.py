"""Transaction envelopes: what a critical write becomes before it is buffered (pure data).

An envelope carries everything needed to apply the write on main later, possibly days later
and after the client's token expired: final primary keys generated at accept time, the
principal, and ordered steps. Values are already JSON-encoded (see ``db.codec``) so the same
bytes travel through Redis, the overlay and the replay call without re-interpretation.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any
from uuid import UUID

import orjson
import uuid_utils.compat as uuid_compat

# The envelope shape this code builds. Bump it, and register the new version on main in the
# same migration (``db.contract.register_envelope_version``), whenever a change to the models
# changes what an envelope may name; main's ``envelope_versions`` says which it applies.
SCHEMA_VERSION = 1

JsonDict = dict[str, Any]


def new_uuid7() -> UUID:
    """Time-ordered ids keep main's primary-key indexes append-mostly."""
    return uuid_compat.uuid7()


class Op(StrEnum):
    INSERT = "insert"
    UPDATE = "update"
    DELETE = "delete"


# Enum lookups by value are slow enough to show when a processor parses thousands of steps.
_OPS = {op.value: op for op in Op}


@dataclass(frozen=True, slots=True)
class RecordRef:
    model: str
    pk: str

    @property
    def key(self) -> str:
        return f"{self.model}:{self.pk}"


@dataclass(frozen=True, slots=True)
class Principal:
    """Who asked for the write, frozen at accept time; replay does not re-check the token."""

    token_id: int | None
    name: str
    role: str


@dataclass(frozen=True, slots=True)
class Step:
    op: Op
    model: str
    pk: str
    # insert: the whole row including its id; update: only changed columns; delete: empty.
    values: JsonDict = field(default_factory=dict)
    # Records this step needs to exist on main first (foreign-key targets).
    refs: tuple[RecordRef, ...] = ()
    # Overlay index entries ("column=value") under which list reads find this record.
    index: tuple[str, ...] = ()
    # "column=value" claims that must be unique among buffered records of this model.
    unique: tuple[str, ...] = ()
    # update: the row_version of the row it was based on, as the site's replica showed it
    # (None: a record with buffered changes, whose first pending change carries the check).
    base: int | None = None

    @property
    def target(self) -> RecordRef:
        return RecordRef(self.model, self.pk)

    def row(self) -> JsonDict:
        """The row sent to main: the values plus the primary key (and, for an update based on
        a known version, ``row_version``: a condition main checks, never a value it sets)."""
        if self.base is not None:
            return {**self.values, "id": self.pk, "row_version": self.base}
        return {**self.values, "id": self.pk}

    def to_dict(self) -> JsonDict:
        return {
            "op": self.op.value,
            "model": self.model,
            "pk": self.pk,
            "values": self.values,
            "refs": [[r.model, r.pk] for r in self.refs],
            "index": list(self.index),
            "unique": list(self.unique),
            **({"base": self.base} if self.base is not None else {}),
        }

    @classmethod
    def from_dict(cls, data: JsonDict) -> Step:
        return cls(
            op=_OPS[data["op"]],
            model=data["model"],
            pk=data["pk"],
            values=data.get("values") or {},
            refs=tuple(RecordRef(m, p) for m, p in data.get("refs", ())),
            index=tuple(data.get("index", ())),
            unique=tuple(data.get("unique", ())),
            base=data.get("base"),
        )


@dataclass(frozen=True, slots=True)
class Envelope:
    tx_id: str
    site: str
    principal: Principal
    created_at: str
    steps: tuple[Step, ...]
    schema_version: int = SCHEMA_VERSION
    idempotency_key: str | None = None
    # At a secondary site, with an Idempotency-Key: the claim and the first answer
    # ({"principal", "hash", "status", "body"}). Main records them when it applies the
    # transaction, so the key outlives the site's Redis copy (see ccat_apply_batch).
    idempotency: JsonDict | None = None

    def touched(self) -> list[RecordRef]:
        """Records this transaction writes, each once, in first-touch order."""
        seen: dict[str, RecordRef] = {}
        for step in self.steps:
            seen.setdefault(step.target.key, step.target)
        return list(seen.values())

    def touched_keys(self) -> str:
        """``touched()`` as the status hash and overlay.lua's ``drop_layers`` hold it."""
        return " ".join(ref.key for ref in self.touched())

    def to_dict(self) -> JsonDict:
        return {
            "tx_id": self.tx_id,
            "site": self.site,
            "principal": {
                "token_id": self.principal.token_id,
                "name": self.principal.name,
                "role": self.principal.role,
            },
            "created_at": self.created_at,
            "schema_version": self.schema_version,
            "idempotency_key": self.idempotency_key,
            "steps": [s.to_dict() for s in self.steps],
            **({"idempotency": self.idempotency} if self.idempotency is not None else {}),
        }

    def to_json(self) -> bytes:
        return orjson.dumps(self.to_dict())

    @classmethod
    def from_dict(cls, data: JsonDict) -> Envelope:
        p = data["principal"]
        return cls(
            tx_id=data["tx_id"],
            site=data["site"],
            principal=Principal(token_id=p.get("token_id"), name=p["name"], role=p["role"]),
            created_at=data["created_at"],
            steps=tuple(Step.from_dict(s) for s in data["steps"]),
            schema_version=int(data.get("schema_version", SCHEMA_VERSION)),
            idempotency_key=data.get("idempotency_key"),
            idempotency=data.get("idempotency"),
        )

    @classmethod
    def from_json(cls, raw: bytes | str) -> Envelope:
        return cls.from_dict(orjson.loads(raw))


@dataclass(frozen=True, slots=True)
class BufferedTransaction:
    """An envelope as the buffer stores it: with its place in the site's order."""

    envelope: Envelope
    seq: int
    deps: tuple[str, ...]
    stream_id: str = ""
