"""Transaction status for people and monitors, and the operator's dead-letter actions.

A transaction's state lives in its ``tx`` hash while buffered, applied or failed, and for
``tx_status_ttl_s`` after it was discarded. Once visible, it is one line in the bucket of
its second (``keys.py``, ``lua/status.lua``) for ``tx_status_ttl_s``: the days a site keeps
statuses are mostly of visible transactions, and a line costs Redis a third of a hash.
Retrying a dead letter also retries the transactions that were dead-lettered
only because they depended on it, in their original order.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from typing import Any

import orjson
from redis.asyncio import Redis

from ccat_api.buffering.envelope import Envelope
from ccat_api.buffering.keys import VISIBLE_BUCKET_MS, SiteKeys, visible_bucket
from ccat_api.buffering.layers import overlay_plan
from ccat_api.buffering.scripts import Scripts
from ccat_api.buffering.wire import text, text_map
from ccat_api.errors import NotFound, StateConflict, UniqueConflict

STATES = ("buffered", "applied", "visible", "failed", "discarded")


def _ms_to_s(value: str | None) -> float | None:
    return int(value) / 1000 if value else None


@dataclass(frozen=True)
class TransactionStatus:
    tx_id: str
    state: str
    seq: int
    created_at: float | None
    applied_at: float | None
    visible_at: float | None
    failed_at: float | None
    lsn: int | None
    attempts: int
    last_error: str | None
    error_code: str | None
    error: str | None
    depends_on: list[str] = field(default_factory=list)
    records: list[str] = field(default_factory=list)
    # A conflict (error_code "conflict"): the model and id, the version the site's update was
    # based on and main's, main's row ("main") and the site's change ("change").
    conflict: dict[str, Any] | None = None

    @classmethod
    def from_hash(cls, tx_id: str, raw: dict[str, str]) -> TransactionStatus:
        lsn = raw.get("lsn")
        return cls(
            tx_id=tx_id,
            state=raw.get("state") or "unknown",
            seq=int(raw.get("seq") or 0),
            created_at=_ms_to_s(raw.get("created_at")),
            applied_at=_ms_to_s(raw.get("applied_at")),
            visible_at=_ms_to_s(raw.get("visible_at")),
            failed_at=_ms_to_s(raw.get("failed_at")),
            lsn=int(lsn) if lsn else None,
            attempts=int(raw.get("attempts") or 0),
            last_error=raw.get("last_error") or None,
            error_code=raw.get("error_code") or None,
            error=raw.get("error") or None,
            depends_on=[d for d in (raw.get("deps") or "").split(",") if d],
            records=(raw.get("touched") or "").split(),
            conflict=orjson.loads(raw["conflict"]) if raw.get("conflict") else None,
        )

    @classmethod
    def from_visible(cls, tx_id: str, line: str) -> TransactionStatus:
        """From its line in a visible bucket (status.lua's ``compact_status``)."""
        seq, created, applied, visible, lsn, attempts, deps, touched = line.split("|", 7)
        created_ms = visible_bucket(tx_id) * VISIBLE_BUCKET_MS + int(created)
        return cls(
            tx_id=tx_id,
            state="visible",
            seq=int(seq),
            created_at=created_ms / 1000,
            applied_at=(created_ms + int(applied)) / 1000 if applied else None,
            visible_at=(created_ms + int(visible)) / 1000,
            failed_at=None,
            lsn=int(lsn) if lsn else None,
            attempts=int(attempts or 0),
            last_error=None,
            error_code=None,
            error=None,
            depends_on=[d for d in deps.split(",") if d],
            records=touched.split(),
        )


@dataclass(frozen=True)
class BufferStats:
    depth: int
    oldest_pending_age_s: float | None
    awaiting_replica: int
    dead_letters: int
    processor: dict[str, str]


class TransactionLedger:
    def __init__(self, redis: Redis, keys: SiteKeys, *, status_ttl_s: int) -> None:
        self._redis = redis
        self._keys = keys
        self._scripts = Scripts(redis)
        self._status_ttl_s = status_ttl_s

    async def get(self, tx_id: str) -> TransactionStatus | None:
        return (await self.many([tx_id]))[0]

    async def recent(
        self, state: str | None, *, limit: int, offset: int
    ) -> tuple[list[TransactionStatus], int]:
        """Newest first. Applied and failed are read from their own indexes, visible from
        its buckets, the rest from the recent index."""
        if state == "visible":
            visible = await self._newest_visible(offset + limit)
            return visible[offset : offset + limit], await self._visible_total()
        if state is None:
            return await self._all_states(limit=limit, offset=offset)
        if state == "failed":
            source, total = self._keys.dead, await self._redis.zcard(self._keys.dead)
        elif state == "applied":
            source, total = self._keys.applied, await self._redis.zcard(self._keys.applied)
        else:
            source, total = self._keys.recent, await self._redis.zcard(self._keys.recent)
        if state in ("failed", "applied"):
            ids = await self._redis.zrevrange(source, offset, offset + limit - 1)
            return [s for s in await self.many(ids) if s is not None], int(total)
        # Other states: walk the recent index newest first and filter.
        found: list[TransactionStatus] = []
        matched = 0
        chunk = 500
        for start in range(0, int(total), chunk):
            ids = await self._redis.zrevrange(source, start, start + chunk - 1)
            for status in await self.many(ids):
                if status is None or status.state != state:
                    continue
                if matched >= offset and len(found) < limit:
                    found.append(status)
                matched += 1
        return found, matched

    async def many(self, ids: Sequence[Any]) -> list[TransactionStatus | None]:
        """Each one's status from its hash, or else from its visible bucket."""
        tx_ids = [text(i) for i in ids]
        async with self._redis.pipeline(transaction=False) as pipe:
            for tx_id in tx_ids:
                pipe.hgetall(self._keys.tx(tx_id))
                pipe.hget(self._keys.visible_bucket(tx_id), tx_id)
            replies = await pipe.execute()
        found: list[TransactionStatus | None] = []
        for i, tx_id in enumerate(tx_ids):
            raw, line = text_map(replies[2 * i]), replies[2 * i + 1]
            # A visible transaction main's standbys may not have yet keeps only kept_* here.
            if "state" in raw:
                found.append(TransactionStatus.from_hash(tx_id, raw))
            elif line is not None:
                found.append(TransactionStatus.from_visible(tx_id, text(line)))
            else:
                found.append(None)
        return found

    async def _newest_visible(self, count: int) -> list[TransactionStatus]:
        """At least the ``count`` newest visible statuses (all if fewer), newest first.

        Buckets are seconds of the tx_id's clock, seq is the site's acceptance order: they
        agree but for transactions made within moments of each other on two gateways, so one
        bucket more than needed is read and the lot sorted by seq."""
        found: list[TransactionStatus] = []
        # A bucket holds up to a second's statuses (2,048 at a busy site, 300 KB): a couple
        # first, more each round for a quiet site's sparse ones.
        start, chunk = 0, 2
        while True:
            buckets: Sequence[Any] = await self._redis.zrevrange(
                self._keys.visible, start, start + chunk - 1
            )
            async with self._redis.pipeline(transaction=False) as pipe:
                for bucket in buckets:
                    pipe.hgetall(self._keys.visible_prefix + text(bucket))
                replies = await pipe.execute()
            for lines in replies:
                enough = len(found) >= count
                found += [
                    TransactionStatus.from_visible(tx_id, line)
                    for tx_id, line in text_map(lines).items()
                ]
                if enough:
                    break
            else:
                start += chunk
                if len(buckets) == chunk:
                    chunk = min(2 * chunk, 64)
                    continue
            break
        found.sort(key=lambda s: s.seq, reverse=True)
        return found

    async def _visible_total(self) -> int:
        return int(await self._redis.hget(self._keys.visible_count, "total") or 0)

    async def _all_states(self, *, limit: int, offset: int) -> tuple[list[TransactionStatus], int]:
        """The recent index (everything not yet visible) and the visible buckets, merged."""
        wanted = offset + limit
        ids = await self._redis.zrevrange(self._keys.recent, 0, wanted - 1)
        pending = [s for s in await self.many(ids) if s is not None]
        seen = {s.tx_id for s in pending}
        visible = [s for s in await self._newest_visible(wanted) if s.tx_id not in seen]
        merged = sorted([*pending, *visible], key=lambda s: s.seq, reverse=True)
        total = int(await self._redis.zcard(self._keys.recent)) + await self._visible_total()
        return merged[offset:wanted], total

    async def retry(self, tx_id: str, *, apply_anyway: bool = False) -> list[str]:
        """Re-buffer a dead letter and its dead-lettered dependents; returns what was retried.

        ``apply_anyway`` resolves a conflict for the site's change: its updates lose the
        version they were based on, so main applies them over whatever it holds now."""
        status = await self.get(tx_id)
        if status is None:
            raise NotFound(f"transaction {tx_id} not found")
        if status.state != "failed":
            raise StateConflict(f"transaction {tx_id} is {status.state}, not failed")
        if apply_anyway:
            if status.error_code != "conflict":
                raise StateConflict(
                    f"transaction {tx_id} failed with {status.error_code}, not a conflict:"
                    " only a conflict is applied anyway"
                )
            await self._drop_bases(tx_id)
        retried = []
        for candidate in [tx_id, *await self._dependents(tx_id)]:
            raw_env = await self._redis.hget(self._keys.tx(candidate), "envelope")
            if raw_env is None:
                continue
            reply = await self._scripts.retry(
                keys=[
                    self._keys.tx(candidate),
                    self._keys.seq,
                    self._keys.stream,
                    self._keys.recent,
                    self._keys.dead,
                    self._keys.stats,
                    self._keys.unsettled,
                ],
                args=[
                    self._keys.events,
                    *self._keys.overlay_families,
                    candidate,
                    int(time.time() * 1000),
                    overlay_plan(Envelope.from_json(raw_env)),
                ],
            )
            outcome = text(reply[0])
            if outcome == "conflict":
                raise UniqueConflict(
                    f"cannot retry {candidate}: {text(reply[1])} value"
                    f" {text(reply[2]).split('=')[0]} is now used by another buffered record"
                )
            if outcome == "retried":
                retried.append(candidate)
        return retried

    async def _drop_bases(self, tx_id: str) -> None:
        """The dead letter's envelope without the row versions its updates were based on."""
        raw_env = await self._redis.hget(self._keys.tx(tx_id), "envelope")
        if raw_env is None:
            return
        envelope = Envelope.from_json(raw_env)
        steps = tuple(replace(step, base=None) for step in envelope.steps)
        await self._redis.hset(
            self._keys.tx(tx_id), "envelope", replace(envelope, steps=steps).to_json()
        )

    async def _dependents(self, root: str) -> list[str]:
        """Dead letters that failed because of ``root``, directly or transitively, by seq."""
        ids = await self._redis.zrange(self._keys.dead, 0, -1)
        statuses = {s.tx_id: s for s in await self.many(ids) if s}
        blocked = {root}
        ordered = []
        for status in sorted(statuses.values(), key=lambda s: s.seq):
            if status.error_code == "dependency_failed" and blocked & set(status.depends_on):
                blocked.add(status.tx_id)
                ordered.append(status.tx_id)
        return ordered

    async def discard(self, tx_id: str) -> None:
        reply = await self._scripts.discard(
            keys=[self._keys.tx(tx_id), self._keys.dead, self._keys.stats],
            args=[self._keys.events, tx_id, int(time.time() * 1000), self._status_ttl_s],
        )
        if text(reply[0]) == "not_failed":
            state = text(reply[1])
            if state == "missing":
                raise NotFound(f"transaction {tx_id} not found")
            raise StateConflict(f"transaction {tx_id} is {state}, not failed")

    async def stats(self) -> BufferStats:
        async with self._redis.pipeline(transaction=False) as pipe:
            pipe.xlen(self._keys.stream)
            pipe.xrange(self._keys.stream, count=1)
            pipe.zcard(self._keys.applied)
            pipe.zcard(self._keys.dead)
            pipe.hgetall(self._keys.processor)
            depth, first, awaiting, dead, processor = await pipe.execute()
        oldest_age_s = None
        if first:
            first_ms = int(text(first[0][0]).split("-")[0])
            oldest_age_s = max(0.0, time.time() - first_ms / 1000)
        return BufferStats(
            depth=int(depth),
            oldest_pending_age_s=oldest_age_s,
            awaiting_replica=int(awaiting),
            dead_letters=int(dead),
            processor=text_map(processor),
        )
