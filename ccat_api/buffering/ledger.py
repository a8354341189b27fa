"""Transaction status for people and monitors, and the operator's dead-letter actions.

A transaction's state lives in its ``tx`` hash for as long as the site may need it (kept
while buffered, applied or failed; ``tx_status_ttl_s`` after it became visible or was
discarded). Retrying a dead letter also retries the transactions that were dead-lettered
only because they depended on it, in their original order.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field

from redis.asyncio import Redis

from ccat_api.buffering.envelope import Envelope
from ccat_api.buffering.keys import SiteKeys
from ccat_api.buffering.overlay import overlay_plan
from ccat_api.buffering.scripts import Scripts
from ccat_api.errors import NotFound, StateConflict, UniqueConflict

STATES = ("buffered", "applied", "visible", "failed", "discarded")


def _ms_to_s(value: bytes | None) -> float | None:
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

    @classmethod
    def from_hash(cls, tx_id: str, raw: dict[bytes, bytes]) -> TransactionStatus:
        def text(name: str) -> str | None:
            value = raw.get(name.encode())
            return value.decode() if value else None

        lsn = text("lsn")
        return cls(
            tx_id=tx_id,
            state=text("state") or "unknown",
            seq=int(text("seq") or 0),
            created_at=_ms_to_s(raw.get(b"created_at")),
            applied_at=_ms_to_s(raw.get(b"applied_at")),
            visible_at=_ms_to_s(raw.get(b"visible_at")),
            failed_at=_ms_to_s(raw.get(b"failed_at")),
            lsn=int(lsn) if lsn else None,
            attempts=int(text("attempts") or 0),
            last_error=text("last_error"),
            error_code=text("error_code"),
            error=text("error"),
            depends_on=[d for d in (text("deps") or "").split(",") if d],
            records=(text("touched") or "").split(),
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
        raw: dict[bytes, bytes] = await self._redis.hgetall(self._keys.tx(tx_id))  # type: ignore[misc]
        return TransactionStatus.from_hash(tx_id, raw) if raw else None

    async def list(
        self, state: str | None, *, limit: int, offset: int
    ) -> tuple[list[TransactionStatus], int]:
        """Newest first. Buffered, applied and failed are read from their own indexes."""
        if state == "failed":
            source, total = self._keys.dead, await self._redis.zcard(self._keys.dead)
        elif state == "applied":
            source, total = self._keys.applied, await self._redis.zcard(self._keys.applied)
        else:
            source, total = self._keys.recent, await self._redis.zcard(self._keys.recent)
        if state in (None, "failed", "applied"):
            ids = await self._redis.zrevrange(source, offset, offset + limit - 1)
            return [s for s in await self._many(ids) if s is not None], int(total)
        # Other states: walk the recent index newest first and filter.
        found: list[TransactionStatus] = []
        matched = 0
        chunk = 500
        for start in range(0, int(total), chunk):
            ids = await self._redis.zrevrange(source, start, start + chunk - 1)
            for status in await self._many(ids):
                if status is None or status.state != state:
                    continue
                if matched >= offset and len(found) < limit:
                    found.append(status)
                matched += 1
        return found, matched

    async def _many(self, ids: list[bytes]) -> list[TransactionStatus | None]:
        async with self._redis.pipeline(transaction=False) as pipe:
            for tx_id in ids:
                pipe.hgetall(self._keys.tx(tx_id.decode()))
            raws: list[dict[bytes, bytes]] = await pipe.execute()
        return [
            TransactionStatus.from_hash(tx_id.decode(), raw) if raw else None
            for tx_id, raw in zip(ids, raws, strict=True)
        ]

    async def retry(self, tx_id: str) -> list[str]:
        """Re-buffer a dead letter and its dead-lettered dependents; returns what was retried."""
        status = await self.get(tx_id)
        if status is None:
            raise NotFound(f"transaction {tx_id} not found")
        if status.state != "failed":
            raise StateConflict(f"transaction {tx_id} is {status.state}, not failed")
        retried = []
        for candidate in [tx_id, *await self._dependents(tx_id)]:
            raw_env = await self._redis.hget(self._keys.tx(candidate), "envelope")  # type: ignore[misc]
            if raw_env is None:
                continue
            reply = await self._scripts.retry(
                args=[
                    self._keys.prefix,
                    candidate,
                    int(time.time() * 1000),
                    overlay_plan(Envelope.from_json(raw_env)),
                ]
            )
            outcome = reply[0].decode()
            if outcome == "conflict":
                raise UniqueConflict(
                    f"cannot retry {candidate}: {reply[1].decode()} value"
                    f" {reply[2].decode().split('=')[0]} is now used by another buffered record"
                )
            if outcome == "retried":
                retried.append(candidate)
        return retried

    async def _dependents(self, root: str) -> list[str]:
        """Dead letters that failed because of ``root``, directly or transitively, by seq."""
        ids = [i.decode() for i in await self._redis.zrange(self._keys.dead, 0, -1)]
        statuses = {s.tx_id: s for s in await self._many([i.encode() for i in ids]) if s}
        blocked = {root}
        ordered = []
        for status in sorted(statuses.values(), key=lambda s: s.seq):
            if status.error_code == "dependency_failed" and blocked & set(status.depends_on):
                blocked.add(status.tx_id)
                ordered.append(status.tx_id)
        return ordered

    async def discard(self, tx_id: str) -> None:
        reply = await self._scripts.discard(
            args=[self._keys.prefix, tx_id, int(time.time() * 1000), self._status_ttl_s]
        )
        if reply[0].decode() == "not_failed":
            state = reply[1].decode()
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
            first_ms = int(first[0][0].decode().split("-")[0])
            oldest_age_s = max(0.0, time.time() - first_ms / 1000)
        return BufferStats(
            depth=int(depth),
            oldest_pending_age_s=oldest_age_s,
            awaiting_replica=int(awaiting),
            dead_letters=int(dead),
            processor={k.decode(): v.decode() for k, v in processor.items()},
        )
