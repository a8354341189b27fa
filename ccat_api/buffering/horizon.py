"""Main's durable horizon, seen from a site: applied transactions that a failover of main
could still lose, kept with their envelopes until main's standbys have them, and replayed
when a new main turns out not to have them.

With asynchronous replication at main, a batch can commit on the primary, be recorded here as
applied, and never reach the standby that Patroni then promotes. ``finish.lua`` keeps such a
transaction's envelope in its status hash and its tx_id in ``undurable`` (scored by commit
LSN); each later batch (and an idle processor, every second) reads main's standbys' flush
position and releases what lies below it. After any new connection to main the processor asks
main which kept transactions it has; those it lacks are applied again, before anything newer,
and applied_transactions keeps that exactly once. Only the processor (the lease holder) writes
these keys.
"""

from __future__ import annotations

from collections.abc import Sequence

from redis.asyncio import Redis

from ccat_api.buffering.envelope import BufferedTransaction, Envelope
from ccat_api.buffering.executor import BatchOutcome
from ccat_api.buffering.keys import SiteKeys

KEPT_FIELDS = ("kept_env", "kept_seq", "kept_deps")


def _text(raw: object) -> str:
    return raw.decode() if isinstance(raw, bytes) else str(raw)


class MainHorizon:
    def __init__(self, redis: Redis, keys: SiteKeys) -> None:
        self._redis = redis
        self._keys = keys

    async def count(self) -> int:
        return int(await self._redis.zcard(self._keys.undurable))

    async def lowest_seq(self) -> int | None:
        """The lowest seq among kept transactions: the site's watermark stays at or below it,
        since a failover of main would make the site send it again."""
        kept = await self.kept()
        return kept[0].seq if kept else None

    async def release(self, durable_lsn: int) -> int:
        """Forget what main's standbys have now: commits at or below ``durable_lsn``."""
        durable = await self._redis.zrangebyscore(self._keys.undurable, "-inf", durable_lsn)
        if not durable:
            return 0
        async with self._redis.pipeline(transaction=True) as pipe:
            for raw in durable:
                pipe.hdel(self._keys.tx(_text(raw)), *KEPT_FIELDS)
            pipe.zrem(self._keys.undurable, *durable)
            await pipe.execute()
        return len(durable)

    async def kept(self) -> list[BufferedTransaction]:
        """Every transaction kept for a failover of main, in acceptance order."""
        ids = [_text(raw) for raw in await self._redis.zrange(self._keys.undurable, 0, -1)]
        if not ids:
            return []
        async with self._redis.pipeline(transaction=False) as pipe:
            for tx_id in ids:
                pipe.hmget(self._keys.tx(tx_id), *KEPT_FIELDS)
            rows = await pipe.execute()
        kept = [
            BufferedTransaction(
                envelope=Envelope.from_json(env),
                seq=int(seq),
                deps=tuple(d for d in (deps or b"").decode().split(",") if d),
            )
            for env, seq, deps in rows
            if env is not None and seq is not None
        ]
        return sorted(kept, key=lambda tx: tx.seq)

    async def reapplied(self, lost: Sequence[BufferedTransaction], outcome: BatchOutcome) -> None:
        """Record the second application of transactions a failover of main lost: applied
        ones wait for the replica again at their new commit LSN (and stay kept until that is
        durable); one main now refuses is a dead letter, its envelope kept for an operator."""
        by_id = {tx.envelope.tx_id: tx for tx in lost}
        async with self._redis.pipeline(transaction=True) as pipe:
            for tx_id in (*outcome.applied, *outcome.duplicates):
                key = self._keys.tx(tx_id)
                # Once visible, the hash kept only kept_*: the status is whole again.
                tx = by_id[tx_id]
                pipe.hset(
                    key,
                    mapping={
                        "state": "applied",
                        "lsn": outcome.lsn,
                        "seq": tx.seq,
                        "deps": ",".join(tx.deps),
                        "touched": tx.envelope.touched_keys(),
                    },
                )
                pipe.persist(key)
                pipe.zadd(self._keys.applied, {tx_id: outcome.lsn})
                pipe.zadd(self._keys.undurable, {tx_id: outcome.lsn})
            for tx_id, (code, error) in outcome.failed.items():
                key = self._keys.tx(tx_id)
                pipe.hset(
                    key,
                    mapping={
                        "state": "failed",
                        "error_code": code,
                        "error": error,
                        "envelope": by_id[tx_id].envelope.to_json(),
                    },
                )
                pipe.persist(key)
                pipe.hdel(key, *KEPT_FIELDS)
                pipe.zadd(self._keys.dead, {tx_id: by_id[tx_id].seq})
                pipe.zrem(self._keys.undurable, tx_id)
                pipe.zrem(self._keys.applied, tx_id)
            await pipe.execute()
