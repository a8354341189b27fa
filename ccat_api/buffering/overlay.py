"""Buffered records as reads see them: per record, one layer per pending transaction.

The accept script appends a layer ``tx_id|seq|op|json`` to the record's entry; the tracker
removes a transaction's layers once the replica shows its commit, and a dead letter's layers
are removed when it fails. Folding the remaining layers, in seq order, over the replica's
row (or over nothing, for records inserted by a pending transaction) gives what a client
must read: its own writes, later updates applied, deletes hidden.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any
from uuid import UUID

from redis.asyncio import Redis

from ccat_api.buffering.catalog import buffered
from ccat_api.buffering.envelope import Op
from ccat_api.buffering.keys import SiteKeys
from ccat_api.buffering.layers import Layer, parse_layers
from ccat_api.buffering.wire import text


@dataclass(frozen=True, slots=True)
class OverlayRecord:
    model: str
    pk: str
    layers: tuple[Layer, ...]

    @property
    def needs_base(self) -> bool:
        """True when the record came from the replica and pending layers only patch it."""
        return self.layers[0].op is not Op.INSERT

    @property
    def tx_ids(self) -> tuple[str, ...]:
        return tuple(dict.fromkeys(layer.tx_id for layer in self.layers))

    def fold(self, base: Mapping[str, Any] | None) -> dict[str, Any] | None:
        """The record's current state (decoded values), or None if deleted or never existed."""
        codec = buffered(self.model).codec
        state: dict[str, Any] | None = dict(base) if base is not None else None
        for layer in self.layers:
            if layer.op is Op.INSERT:
                state = {**codec.decode(layer.values), "id": UUID(self.pk)}
            elif layer.op is Op.UPDATE:
                # A patch whose target is gone (its insert was dead-lettered) shows nothing.
                if state is not None:
                    state.update(codec.decode(layer.values))
            else:
                state = None
        return state


class Overlay:
    def __init__(self, redis: Redis, keys: SiteKeys) -> None:
        self._redis = redis
        self._keys = keys

    async def records(self, model: str, pks: Sequence[str]) -> dict[str, OverlayRecord]:
        if not pks:
            return {}
        raws = await self._redis.hmget(self._keys.overlay(model), list(pks))
        return _records(model, zip(pks, raws, strict=True))

    async def all_records(self, model: str) -> dict[str, OverlayRecord]:
        raws = await self._redis.hgetall(self._keys.overlay(model))
        return _records(model, ((text(k), v) for k, v in raws.items()))

    async def indexed_pks(self, model: str, entries: Sequence[str]) -> list[str]:
        """Records filed under every one of the entries (``column=value``)."""
        keys = [self._keys.overlay_index(model, e) for e in entries]
        members = (
            await self._redis.smembers(keys[0])
            if len(keys) == 1
            else await self._redis.sinter(keys)
        )
        return sorted(text(m) for m in members)

    async def count(self, model: str) -> int:
        return int(await self._redis.hlen(self._keys.overlay(model)))


def _records(
    model: str, items: Iterable[tuple[str, bytes | str | None]]
) -> dict[str, OverlayRecord]:
    return {
        pk: OverlayRecord(model, pk, tuple(parse_layers(raw)))
        for pk, raw in items
        if raw is not None
    }
