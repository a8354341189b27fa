"""A replay batch on either side of its trip to main: the stream entries as read (parsed, or
unreadable), the triage that keeps some transactions from main, and the outcome recorded.

Triage asks only Redis. A transaction is refused (a dead letter at once) when its envelope
cannot be read or it depends on a dead letter; it is held (moved to
the stream's end) when a dependency still waits behind it. Recording is finish.lua:
applied transactions with their LSN, dead letters with their reason, held ones moved, every
entry acknowledged, each transaction in one atomic step. A batch of thousands is recorded in
chunks of ``RECORD_CHUNK`` calls, in order: one script over 5,000 transactions would hold
Redis, and with it every buffered write, for a noticeable time.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

import orjson
from redis.asyncio import Redis
from redis.exceptions import RedisError

from ccat_api.buffering.envelope import BufferedTransaction, Envelope
from ccat_api.buffering.executor import BatchOutcome
from ccat_api.buffering.keys import CONSUMER_GROUP, SiteKeys
from ccat_api.buffering.scripts import Scripts

log = logging.getLogger(__name__)

# A batch's log line lists its tx ids up to this many (a steady trickle: every one); a
# drain's batches of thousands name their first and last, and each transaction's outcome
# is a DEBUG line (dead letters: always a WARNING line each).
LOGGED_TX_IDS_MAX = 50
UNREADABLE = "unreadable_envelope"
# Transactions per finish.lua call: each holds Redis (and the accepts behind it) while it
# runs; 500 took 10 ms (p50; 30 ms at most) in the slow log of a drain on 2 busy cores.
RECORD_CHUNK = 100
# States a dependency can be in that mean its dependents can never apply.
_DEAD_STATES = {b"failed", b"discarded"}


@dataclass
class StreamEntry:
    stream_id: str
    tx_id: str | None = None
    tx: BufferedTransaction | None = None
    # Why the entry cannot be replayed (its envelope does not parse): it becomes a dead
    # letter. With neither this nor ``tx`` the entry's fields are gone (deleted meanwhile).
    unreadable: str | None = None


def parse_entry(stream_id: bytes, fields: dict[bytes, bytes] | None) -> StreamEntry:
    sid = stream_id.decode()
    if not fields:
        return StreamEntry(sid)
    tx_id = fields[b"tx"].decode() if b"tx" in fields else sid
    try:
        deps = fields.get(b"deps", b"").decode()
        tx = BufferedTransaction(
            envelope=Envelope.from_json(fields[b"env"]),
            seq=int(fields[b"seq"]),
            deps=tuple(d for d in deps.split(",") if d),
            stream_id=sid,
        )
    except Exception as exc:
        # Whatever the parse raised (an op or field this version does not know, JSON that is
        # not an envelope), it says the same: this entry cannot be replayed, and stopping on
        # it would stop the site's replay.
        return StreamEntry(sid, tx_id, unreadable=f"cannot read the envelope: {exc!r}")
    return StreamEntry(sid, tx.envelope.tx_id, tx)


@dataclass
class Triage:
    refused: dict[str, tuple[str, str]] = field(default_factory=dict)
    held: list[str] = field(default_factory=list)


class Bookkeeper:
    def __init__(self, redis: Redis, keys: SiteKeys) -> None:
        self._redis = redis
        self._keys = keys
        self._scripts = Scripts(redis)

    async def triage(
        self,
        txs: Sequence[BufferedTransaction],
        unreadable: Mapping[str, str],
        just_settled: Mapping[str, bytes],
    ) -> Triage:
        """Decide, without asking main, which transactions must not go now.

        ``unreadable`` (tx id -> reason) are refused, and so are their dependents. A held
        transaction's dependency waits behind it, which happens only after an operator
        retried a dead letter; applying now would apply it before one it depends on.
        ``just_settled`` holds the states of the previous batch, whose recording may still
        be on its way into Redis.
        """
        triage = Triage(refused={t: (UNREADABLE, reason) for t, reason in unreadable.items()})
        position = {tx.envelope.tx_id: i for i, tx in enumerate(txs)}
        outside = sorted(
            {d for tx in txs for d in tx.deps if d not in position and d not in unreadable}
        )
        dead: set[str] = set(unreadable)
        waiting: set[str] = set()
        if outside:
            async with self._redis.pipeline(transaction=False) as pipe:
                for dep in outside:
                    pipe.hget(self._keys.tx(dep), "state")
                states = await pipe.execute()
            for dep, stored in zip(outside, states, strict=True):
                state = just_settled.get(dep, stored)
                if state in _DEAD_STATES:
                    dead.add(dep)
                elif state == b"buffered":
                    waiting.add(dep)
        for i, tx in enumerate(txs):
            tx_id = tx.envelope.tx_id
            blocker = next((d for d in tx.deps if d in dead), None)
            if blocker is not None:
                triage.refused[tx_id] = (
                    "dependency_failed",
                    f"depends on failed transaction {blocker}",
                )
                dead.add(tx_id)
            elif any(d in waiting or d in triage.held or position.get(d, -1) > i for d in tx.deps):
                triage.held.append(tx_id)
        return triage

    async def record(
        self,
        stream_ids: Mapping[str, str],
        outcome: BatchOutcome,
        triage: Triage,
        batch_ms: float,
    ) -> bool:
        """Record the batch's outcome with finish.lua; True if it applied anything."""
        failed = {**triage.refused, **outcome.failed}
        results = {
            "applied": [
                [tx_id, stream_ids[tx_id]] for tx_id in (*outcome.applied, *outcome.duplicates)
            ],
            "failed": [
                [tx_id, stream_ids[tx_id], code, error]
                + (
                    [orjson.dumps(outcome.conflicts[tx_id]).decode()]
                    if tx_id in outcome.conflicts
                    else []
                )
                for tx_id, (code, error) in failed.items()
            ],
            "held": [[tx_id, stream_ids[tx_id]] for tx_id in triage.held],
        }
        items = [(kind, item) for kind, listed in results.items() for item in listed]
        batch_size = len(results["applied"]) + len(results["failed"])
        now_ms = int(time.time() * 1000)
        for start in range(0, max(1, len(items)), RECORD_CHUNK):
            chunk: dict[str, list[list[str]]] = {"applied": [], "failed": [], "held": []}
            for kind, item in items[start : start + RECORD_CHUNK]:
                chunk[kind].append(item)
            await self._scripts.finish(
                keys=[
                    self._keys.stream,
                    self._keys.applied,
                    self._keys.dead,
                    self._keys.stats,
                    self._keys.undurable,
                ],
                args=[
                    self._keys.events,
                    *self._keys.overlay_families,
                    self._keys.tx_prefix,
                    CONSUMER_GROUP,
                    now_ms,
                    outcome.lsn,
                    orjson.dumps(chunk),
                    int(batch_ms),
                    # Main's standbys may not have this commit yet: keep the envelopes.
                    int(outcome.durable_lsn is None or outcome.durable_lsn < outcome.lsn),
                    # The batch counts once in the statistics, with its first chunk.
                    batch_size if start == 0 else 0,
                ],
            )
        for tx_id, (code, error) in failed.items():
            log.warning(
                "dead letter %s: %s %s", tx_id, code, error,
                extra={"tx_id": tx_id, "error_code": code},
            )  # fmt: skip
        for tx_id in triage.held:
            log.info(
                "held %s: a transaction it depends on waits behind it", tx_id,
                extra={"tx_id": tx_id},
            )  # fmt: skip
        if log.isEnabledFor(logging.DEBUG):
            for tx_id in outcome.applied:
                log.debug("applied %s", tx_id, extra={"tx_id": tx_id, "lsn": outcome.lsn})
            for tx_id in outcome.duplicates:
                log.debug("already applied %s", tx_id, extra={"tx_id": tx_id})
        return bool(results["applied"])

    async def note_attempt(self, txs: Sequence[BufferedTransaction], error: str) -> None:
        """Count a failed try on each transaction, for operators; never raises, since it runs
        while the failure is being handled."""
        try:
            async with self._redis.pipeline(transaction=False) as pipe:
                for tx in txs:
                    key = self._keys.tx(tx.envelope.tx_id)
                    pipe.hincrby(key, "attempts", 1)
                    pipe.hset(key, "last_error", error[:500])
                await pipe.execute()
        except (RedisError, OSError):
            log.warning("could not record the failed attempt", exc_info=True)
