"""Replays the site's stream on main: claim -> execute -> record, one batch at a time.

One processor per site is active (the lease holder); it reads as the single consumer
``active`` of the stream's group, so entries a dead predecessor claimed but never
acknowledged are read again first. Recording the outcome (finish.lua) acknowledges the
entries in the same Redis step, so a crash anywhere leaves them pending and the replay
finds the committed ones in applied_transactions: exactly once.

Transient failures raise ``TransientReplayError`` and the batch is retried after a capped
exponential backoff; they never dead-letter anything. Permanent failures come back from main
per transaction and become dead letters together with their dependents.

``run_forever`` overlaps the local work with the WAN: while a batch is in flight to main, the
next one is read and parsed, and the previous outcome is recorded in the background. Main
still sees batches strictly one after another; only Redis bookkeeping runs alongside.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import random
import socket
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

import orjson
from redis.asyncio import Redis
from redis.exceptions import RedisError, ResponseError

from ccat_api.buffering.envelope import BufferedTransaction, Envelope
from ccat_api.buffering.executor import (
    BatchExecutor,
    BatchOutcome,
    LeaseSuperseded,
    TransientReplayError,
    refuse_reason,
)
from ccat_api.buffering.keys import CONSUMER_GROUP, CONSUMER_NAME, SiteKeys
from ccat_api.buffering.lease import Lease
from ccat_api.buffering.scripts import Scripts
from ccat_api.failpoints import failpoint
from ccat_api.metrics import REPLAY_BATCH_DURATION, REPLAY_BATCH_SIZE
from ccat_api.waits import sleep_or_stop

log = logging.getLogger(__name__)

HEARTBEAT_INTERVAL_S = 1.0
# A batch's log line lists its tx ids up to this many (a steady trickle: every one); a
# drain's batches of thousands name their first and last, and each transaction's outcome
# is a DEBUG line (dead letters: always a WARNING line each).
LOGGED_TX_IDS_MAX = 50
# States a dependency can be in that mean its dependents can never apply.
_DEAD_STATES = {b"failed", b"discarded"}


@dataclass
class Backoff:
    """Capped exponential backoff with full jitter (no thundering herd after an outage)."""

    initial_s: float
    max_s: float
    failures: int = 0

    def next_delay_s(self) -> float:
        self.failures += 1
        ceiling = min(self.max_s, self.initial_s * 2 ** (self.failures - 1))
        return random.uniform(ceiling / 2, ceiling)

    def reset(self) -> None:
        self.failures = 0


@dataclass
class Triage:
    refused: dict[str, tuple[str, str]] = field(default_factory=dict)
    held: list[str] = field(default_factory=list)


@dataclass
class StreamEntry:
    stream_id: str
    tx: BufferedTransaction | None  # None: the entry's fields are gone (deleted meanwhile)


class Processor:
    def __init__(
        self,
        redis: Redis,
        keys: SiteKeys,
        executor: BatchExecutor,
        lease: Lease,
        *,
        batch_size: int,
        poll_interval_s: float,
        backoff: Backoff,
        status_ttl_s: int,
    ) -> None:
        self._redis = redis
        self._keys = keys
        self._executor = executor
        self._lease = lease
        self._scripts = Scripts(redis)
        self._batch_size = batch_size
        self._poll_interval_s = poll_interval_s
        self._backoff = backoff
        self._status_ttl_s = status_ttl_s
        self._identity = f"{socket.gethostname()}:{os.getpid()}"
        self._group_ready = False
        self._last_heartbeat: tuple[str, float] = ("", 0.0)
        self._fenced_epoch: int | None = None
        self.on_applied: Callable[[int], None] | None = None
        # Pipelining (run_forever only): the next batch being read while one is applied, the
        # previous outcome being recorded, and that outcome's states for the next triage.
        self._prefetch: asyncio.Task[list[StreamEntry]] | None = None
        self._recording: asyncio.Task[None] | None = None
        self._just_settled: dict[str, bytes] = {}

    async def ensure_group(self) -> None:
        if self._group_ready:
            return
        try:
            await self._redis.xgroup_create(
                self._keys.stream, CONSUMER_GROUP, id="0", mkstream=True
            )
        except ResponseError as exc:
            if "BUSYGROUP" not in str(exc):
                raise
        self._group_ready = True

    async def run_once(self, *, block_ms: int | None = None, pipelined: bool = False) -> int:
        """Replay one batch if we hold the lease; returns how many transactions it settled.

        Without ``pipelined`` the batch is fully recorded in Redis when this returns."""
        if not await self._lease.ensure():
            await self._heartbeat("standby")
            return 0
        if self._fenced_epoch != self._lease.epoch:
            assert self._lease.epoch is not None
            try:
                await self._executor.fence(self._lease.epoch)
            except LeaseSuperseded as exc:
                await self._lease.lose(min_epoch=exc.fence_epoch)
                return 0
            self._fenced_epoch = self._lease.epoch
        await self.ensure_group()
        entries = await self._claim(block_ms)
        if not entries:
            await self._heartbeat("idle")
            return 0
        return await self._replay(entries, pipelined=pipelined)

    async def run_forever(self, stop: asyncio.Event) -> None:
        block_ms = max(1, int(self._poll_interval_s * 1000))
        while not stop.is_set():
            try:
                settled = await self.run_once(block_ms=block_ms, pipelined=True)
                self._backoff.reset()
                if settled == 0 and not self._lease.held:
                    await sleep_or_stop(stop, self._poll_interval_s * 10)
            except TransientReplayError as exc:
                await self._drop_pipeline()
                delay_s = self._backoff.next_delay_s()
                log.warning("replay failed, retrying in %.2fs: %s", delay_s, exc)
                await self._heartbeat("backoff", error=str(exc), retry_in_s=delay_s)
                await sleep_or_stop(stop, delay_s)
            except (RedisError, OSError) as exc:
                # Redis itself is away (restarting): nothing to do until it is back.
                self._group_ready = False
                await self._drop_pipeline()
                delay_s = self._backoff.next_delay_s()
                log.warning("redis unavailable, retrying in %.2fs: %s", delay_s, exc)
                await sleep_or_stop(stop, delay_s)
        with contextlib.suppress(RedisError, OSError):
            await self._finish_recording()
        await self._drop_pipeline()
        await self._executor.close()
        try:
            await self._heartbeat("stopped")
            await self._lease.release()
        except (RedisError, OSError):
            pass

    async def close(self) -> None:
        await self._executor.close()

    async def backlog(self) -> tuple[int, int]:
        """(transactions not yet applied, applied ones the replica has not shown yet)."""
        async with self._redis.pipeline(transaction=False) as pipe:
            pipe.xlen(self._keys.stream)
            pipe.zcard(self._keys.applied)
            waiting, unseen = await pipe.execute()
        return int(waiting), int(unseen)

    async def _claim(self, block_ms: int | None) -> list[StreamEntry]:
        if self._prefetch is not None:
            prefetched, self._prefetch = self._prefetch, None
            entries = await prefetched
            if entries:
                # The prefetch ran when the previous batch left; top up with what arrived
                # while it was on the WAN, or those writes would wait one more round trip.
                if len(entries) < self._batch_size:
                    entries += await self._read(">", None, count=self._batch_size - len(entries))
                return entries
        # Our pending entries must not include a batch whose outcome is still being recorded.
        await self._finish_recording()
        # Our own pending entries first: they were claimed before a crash or a failed try.
        pending = await self._read("0", None)
        if pending:
            return pending
        return await self._read(">", block_ms)

    async def _read(
        self, from_id: str, block_ms: int | None, *, count: int | None = None
    ) -> list[StreamEntry]:
        reply = await self._redis.xreadgroup(
            CONSUMER_GROUP,
            CONSUMER_NAME,
            {self._keys.stream: from_id},
            count=count or self._batch_size,
            block=block_ms,
        )
        if not reply:
            return []
        # Reply shape: [[stream, [(id, {field: value}), ...]]]
        messages: list[tuple[bytes, dict[bytes, bytes] | None]] = reply[0][1]  # type: ignore[index, assignment]
        return [_parse_entry(sid, fields) for sid, fields in messages]

    async def _finish_recording(self) -> None:
        recording, self._recording = self._recording, None
        if recording is not None:
            await recording

    async def _drop_pipeline(self) -> None:
        """Forget in-memory work after a failure; whatever Redis delivered stays pending there
        and is read again, in order, from the pending list."""
        for task in (self._prefetch, self._recording):
            if task is not None:
                task.cancel()
                with contextlib.suppress(asyncio.CancelledError, RedisError, OSError):
                    await task
        self._prefetch = None
        self._recording = None
        self._just_settled = {}

    async def _replay(self, entries: list[StreamEntry], *, pipelined: bool = False) -> int:
        vanished = [e.stream_id for e in entries if e.tx is None]
        if vanished:
            await self._redis.xack(self._keys.stream, CONSUMER_GROUP, *vanished)
        txs = [e.tx for e in entries if e.tx is not None]
        if not txs:
            return len(vanished)

        triage = await self._triage(txs)
        to_main = [
            tx
            for tx in txs
            if tx.envelope.tx_id not in triage.refused and tx.envelope.tx_id not in triage.held
        ]
        outcome = BatchOutcome()
        batch_ms = 0.0
        if to_main:
            await self._heartbeat("applying", batch=len(to_main))
            if pipelined:
                self._prefetch = asyncio.create_task(self._read(">", None))
            started = time.perf_counter()
            try:
                async with self._lease.kept_alive():
                    outcome = await self._executor.apply(to_main, self._lease.epoch)
            except TransientReplayError as exc:
                await self._note_attempt(to_main, str(exc))
                raise
            except LeaseSuperseded as exc:
                log.warning("lease superseded on main: %s", exc)
                await self._lease.lose(min_epoch=exc.fence_epoch)
                return 0
            batch_ms = (time.perf_counter() - started) * 1000
            REPLAY_BATCH_SIZE.observe(len(to_main))
            REPLAY_BATCH_DURATION.observe(batch_ms / 1000)
            log.info(
                "replayed %d transactions (%s path, %d failed, %d already applied) in %.0f ms",
                len(to_main),
                outcome.path,
                len(outcome.failed),
                len(outcome.duplicates),
                batch_ms,
                extra={
                    "first_tx_id": to_main[0].envelope.tx_id,
                    "last_tx_id": to_main[-1].envelope.tx_id,
                    "tx_ids": (
                        [tx.envelope.tx_id for tx in to_main]
                        if len(to_main) <= LOGGED_TX_IDS_MAX
                        else None
                    ),
                    "transactions": len(to_main),
                    "lsn": outcome.lsn,
                },
            )
        failpoint("after_commit")
        await self._finish_recording()
        if pipelined:
            self._just_settled = {
                **dict.fromkeys(outcome.applied, b"applied"),
                **dict.fromkeys(outcome.duplicates, b"applied"),
                **dict.fromkeys([*outcome.failed, *triage.refused], b"failed"),
                **dict.fromkeys(triage.held, b"buffered"),
            }
            self._recording = asyncio.create_task(self._record(txs, outcome, triage, batch_ms))
        else:
            self._just_settled = {}
            await self._record(txs, outcome, triage, batch_ms)
        await self._heartbeat("idle", batch=len(txs))
        return len(entries)

    async def _triage(self, txs: Sequence[BufferedTransaction]) -> Triage:
        """Decide, without asking main, which transactions must not go now.

        Refused (dead letters): an unknown schema, or a dependency that is a dead letter.
        Held (moved to the end of the stream): a dependency that is still waiting behind
        this one, which happens only after an operator retried a dead letter; applying now
        would apply a transaction before one it depends on.
        """
        triage = Triage()
        position = {tx.envelope.tx_id: i for i, tx in enumerate(txs)}
        outside = sorted({d for tx in txs for d in tx.deps if d not in position})
        dead: set[str] = set()
        waiting: set[str] = set()
        if outside:
            async with self._redis.pipeline(transaction=False) as pipe:
                for dep in outside:
                    pipe.hget(self._keys.tx(dep), "state")
                states = await pipe.execute()
            for dep, stored in zip(outside, states, strict=True):
                # The previous batch's outcome may still be on its way into Redis.
                state = self._just_settled.get(dep, stored)
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
            elif (reason := refuse_reason(tx)) is not None:
                triage.refused[tx_id] = reason
                dead.add(tx_id)
        return triage

    async def _record(
        self,
        txs: Sequence[BufferedTransaction],
        outcome: BatchOutcome,
        triage: Triage,
        batch_ms: float,
    ) -> None:
        failed = {**triage.refused, **outcome.failed}
        stream_ids = {tx.envelope.tx_id: tx.stream_id for tx in txs}
        results = {
            "applied": [
                [tx_id, stream_ids[tx_id]] for tx_id in (*outcome.applied, *outcome.duplicates)
            ],
            "failed": [
                [tx_id, stream_ids[tx_id], code, error] for tx_id, (code, error) in failed.items()
            ],
            "held": [[tx_id, stream_ids[tx_id]] for tx_id in triage.held],
        }
        await self._scripts.finish(
            keys=[self._keys.stream, self._keys.applied, self._keys.dead, self._keys.stats],
            args=[
                self._keys.events,
                *self._keys.overlay_families,
                self._keys.tx_prefix,
                CONSUMER_GROUP,
                int(time.time() * 1000),
                outcome.lsn,
                orjson.dumps(results),
                int(batch_ms),
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
        if results["applied"] and self.on_applied is not None:
            self.on_applied(outcome.lsn)

    async def _note_attempt(self, txs: Sequence[BufferedTransaction], error: str) -> None:
        try:
            async with self._redis.pipeline(transaction=False) as pipe:
                for tx in txs:
                    key = self._keys.tx(tx.envelope.tx_id)
                    pipe.hincrby(key, "attempts", 1)
                    pipe.hset(key, "last_error", error[:500])
                await pipe.execute()
        except (RedisError, OSError):
            log.warning("could not record the failed attempt", exc_info=True)

    async def _heartbeat(self, state: str, **details: object) -> None:
        # Every heartbeat is an fsynced write: send one on a change of state, or each second.
        now = time.monotonic()
        last_state, last_at = self._last_heartbeat
        if state == last_state and not details and now - last_at < HEARTBEAT_INTERVAL_S:
            return
        self._last_heartbeat = (state, now)
        fields: dict[str, str] = {
            "state": state,
            "consumer": self._identity,
            "epoch": str(self._lease.epoch or ""),
            "updated_at": str(int(time.time() * 1000)),
        }
        fields.update({k: str(v) for k, v in details.items()})
        async with self._redis.pipeline(transaction=False) as pipe:
            pipe.delete(self._keys.processor)
            pipe.hset(self._keys.processor, mapping=fields)  # type: ignore[arg-type]
            pipe.pexpire(self._keys.processor, int(self._status_ttl_ms()))
            await pipe.execute()

    def _status_ttl_ms(self) -> float:
        return max(30_000.0, self._poll_interval_s * 1000 * 100)


def _parse_entry(stream_id: bytes, fields: dict[bytes, bytes] | None) -> StreamEntry:
    sid = stream_id.decode()
    if not fields or b"env" not in fields:
        return StreamEntry(sid, None)
    deps = fields.get(b"deps", b"").decode()
    return StreamEntry(
        sid,
        BufferedTransaction(
            envelope=Envelope.from_json(fields[b"env"]),
            seq=int(fields[b"seq"]),
            deps=tuple(d for d in deps.split(",") if d),
            stream_id=sid,
        ),
    )
