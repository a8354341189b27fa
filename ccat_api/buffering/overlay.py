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
from redis.exceptions import ResponseError

from ccat_api.buffering.catalog import buffered
from ccat_api.buffering.envelope import Op
from ccat_api.buffering.keys import CONSUMER_GROUP, FOLD_ENTRY, ORDER_ENTRY_PREFIX, SiteKeys
from ccat_api.buffering.layers import ORDERED_COLUMNS, Layer, parse_layers
from ccat_api.buffering.scripts import Scripts
from ccat_api.buffering.wire import text

# A page that needs at most this many plain inserts reads them all rather than walking.
FEW_PLAIN = 200
# Sorted-set members a walk looks at before it reads every named record instead.
WALK_LIMIT = 20_000
# Transactions handed to the processor or applied at most, for a page's fast path.
MOST_IN_FLIGHT = 20_000


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
        if state is not None and self.layers:
            # Main will count the buffered changes in its own versions: the replica's is not
            # the one an update of this record is based on (see Step.base).
            state.pop("row_version", None)
        return state


@dataclass(frozen=True, slots=True)
class PageSnapshot:
    """One instant of the overlay as a list page needs it (``lua/page.lua``).

    ``plain`` holds records that are one plain insert each: the first ones in the page's
    order when ``complete`` is False (then ``plain_total`` counts all those the filter names),
    or every one the filter names when it is True. ``folded`` holds every record marked to
    fold that the filter may name. ``in_flight`` are the pks of records whose transaction
    may already be on main (so on the replica); ``delivered`` is the consumer group's last
    delivered id at that instant."""

    plain: dict[str, OverlayRecord]
    plain_total: int
    complete: bool
    folded: dict[str, OverlayRecord]
    in_flight: frozenset[str]
    delivered: str


class Overlay:
    def __init__(self, redis: Redis, keys: SiteKeys) -> None:
        self._redis = redis
        self._keys = keys
        self._scripts = Scripts(redis)

    @staticmethod
    def ordered(model: str, column: str) -> bool:
        return column in ORDERED_COLUMNS.get(model, ())

    async def page_snapshot(
        self, model: str, entries: Sequence[str], column: str, *, descending: bool, wanted: int
    ) -> PageSnapshot | None:
        """None when too many transactions are in flight for the fast path."""
        index = self._keys.overlay_index
        reply = await self._scripts.page(
            keys=[
                self._keys.overlay(model),
                index(model, FOLD_ENTRY),
                index(model, ORDER_ENTRY_PREFIX + column),
                self._keys.stream,
                self._keys.applied,
                *(index(model, e) for e in entries),
            ],
            args=[
                "1" if descending else "0",
                wanted,
                FEW_PLAIN,
                WALK_LIMIT,
                CONSUMER_GROUP,
                self._keys.tx_prefix,
                model,
                MOST_IN_FLIGHT,
            ],
        )
        if text(reply[0]) == "busy":
            return None
        mode, plain_total, plain, plain_raw, folded, folded_raw, in_flight, delivered = reply
        return PageSnapshot(
            plain=_records(model, zip(map(text, plain), plain_raw, strict=True)),
            plain_total=int(plain_total),
            complete=text(mode) == "all",
            folded=_records(model, zip(map(text, folded), folded_raw, strict=True)),
            in_flight=frozenset(map(text, in_flight)),
            delivered=text(delivered),
        )

    async def delivered(self) -> str:
        """The consumer group's last delivered id ('' before the processor's first read)."""
        try:
            groups = await self._redis.xinfo_groups(self._keys.stream)
        except ResponseError:  # no stream yet
            return ""
        for group in groups:
            if text(group["name"]) == CONSUMER_GROUP:
                return text(group["last-delivered-id"])
        return ""

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
