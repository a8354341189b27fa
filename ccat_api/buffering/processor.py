"""Replays the site's stream on main: claim -> execute -> record, one batch at a time.

One processor per site is active (the lease holder); it reads as the single consumer
``active`` of the stream's group (``consumer.py``), so entries a dead predecessor claimed
but never acknowledged are read again first. Recording the outcome (finish.lua) acknowledges
the entries in the same Redis step, so a crash anywhere leaves them pending and the replay
finds the committed ones in applied_transactions: exactly once.

Transient failures raise ``TransientReplayError`` and the batch is retried after a capped
exponential backoff; they never dead-letter anything, and neither does Redis being away. A
schema disagreement with main (``SchemaHold``: an envelope version main does not apply, or
drift between main's tables and the envelopes) holds the whole replay, in order, and is
tried again every ``schema_hold_retry_s`` until a migration or an upgrade resolves it; the
heartbeat (``heartbeat.py``) says ``held`` and why. After each new connection to main,
before anything newer, transactions a failover of main lost are applied again
(``horizon.py``). The handling of either (a heartbeat, a note on the transactions) cannot
raise in turn: the loop outlives any mix of outages. Permanent failures come back from main
per transaction and become dead letters together with their dependents; ``batches.py``
triages a batch before it goes and records what came back.

``run_forever`` overlaps the local work with the WAN: while a batch is in flight to main, the
next one is read and parsed, and the previous outcome is recorded in the background. Main
still sees batches strictly one after another; only Redis bookkeeping runs alongside.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Callable

from redis.asyncio import Redis
from redis.exceptions import RedisError

from ccat_api.buffering.batches import LOGGED_TX_IDS_MAX, Bookkeeper, StreamEntry, Triage
from ccat_api.buffering.consumer import StreamConsumer
from ccat_api.buffering.executor import (
    BatchExecutor,
    BatchOutcome,
    LeaseSuperseded,
    TransientReplayError,
)
from ccat_api.buffering.heartbeat import Heartbeat
from ccat_api.buffering.holds import SchemaHold, hold_reason
from ccat_api.buffering.horizon import MainHorizon
from ccat_api.buffering.keys import CONSUMER_GROUP, SiteKeys
from ccat_api.buffering.lease import Lease
from ccat_api.buffering.upkeep import MainUpkeep
from ccat_api.db.revisions import Relation
from ccat_api.failpoints import failpoint
from ccat_api.metrics import (
    REPLAY_BATCH_DURATION,
    REPLAY_BATCH_SIZE,
)
from ccat_api.supervisor import Crash
from ccat_api.waits import Backoff, cancel_and_wait, sleep_or_stop

# runtime.build_worker takes the processor's Backoff from here.
__all__ = ["Backoff", "Processor"]

log = logging.getLogger(__name__)


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
        schema_hold_retry_s: float = 10.0,
        backlog_report_interval_s: float = 30.0,
        keeps_undurable: bool = False,
    ) -> None:
        self._redis = redis
        self._keys = keys
        self._executor = executor
        self._lease = lease
        self._book = Bookkeeper(redis, keys)
        self._consumer = StreamConsumer(redis, keys, batch_size=batch_size)
        self._poll_interval_s = poll_interval_s
        self._backoff = backoff
        self.heartbeat = Heartbeat(
            redis, keys, lease, ttl_ms=int(max(30_000.0, poll_interval_s * 1000 * 100))
        )
        self._schema_hold_retry_s = schema_hold_retry_s
        # Main has standbys that a batch may not have reached (main_standby_names).
        self._horizon = MainHorizon(redis, keys) if keeps_undurable else None
        self.upkeep = MainUpkeep(
            redis, keys, executor, lease,
            report_interval_s=backlog_report_interval_s, horizon=self._horizon,
        )  # fmt: skip
        # Since when (epoch ms) the replay has been held; None while it flows.
        self._held_since_ms: int | None = None
        self._fenced_epoch: int | None = None
        self._schema_checked_epoch: int | None = None
        self.on_applied: Callable[[int], None] | None = None
        # Pipelining (run_forever only): the next batch being read while one is applied (the
        # consumer's prefetch), the previous outcome being recorded, and that outcome's states
        # for the next triage.
        self._recording: asyncio.Task[None] | None = None
        self._just_settled: dict[str, bytes] = {}

    async def run_once(self, *, block_ms: int | None = None, pipelined: bool = False) -> int:
        """Replay one batch if we hold the lease; returns how many transactions it settled.

        Without ``pipelined`` the batch is fully recorded in Redis when this returns."""
        failpoint("processor_pass")
        if not await self._lease.ensure():
            await self.heartbeat.send("standby")
            return 0
        # Renewed all through the pass: a first pass (connect, fence, schema check, reports)
        # plus a batch can outlast the lease on a slow link or a busy machine.
        async with self._lease.kept_alive():
            return await self._leased_pass(block_ms, pipelined=pipelined)

    async def _leased_pass(self, block_ms: int | None, *, pipelined: bool) -> int:
        epoch = self._lease.epoch
        assert epoch is not None
        if self._fenced_epoch != epoch or self._schema_checked_epoch != epoch:
            # Claiming the fence again for the epoch that holds it changes nothing.
            try:
                check = await self._executor.begin(epoch)
            except LeaseSuperseded as exc:
                await self._lease.lose(min_epoch=exc.fence_epoch)
                return 0
            self._fenced_epoch = epoch
            if not check.servable:
                raise SchemaHold(
                    "main_behind" if check.relation is Relation.BEHIND else "version_not_applied",
                    check.describe(),
                )
            self._schema_checked_epoch = epoch
        await self._consumer.ensure_group()
        await self.upkeep.before_replay()
        entries = await self._claim(block_ms)
        if not entries:
            await self.upkeep.report(idle=True, background=pipelined)
            await self.heartbeat.send("idle")
            return 0
        settled = await self._replay(entries, pipelined=pipelined)
        await self.upkeep.report(idle=False, background=pipelined)
        return settled

    async def run_forever(self, stop: asyncio.Event) -> None:
        block_ms = max(1, int(self._poll_interval_s * 1000))
        try:
            while not stop.is_set():
                delay_s = await self._pass(block_ms)
                if delay_s > 0:
                    await sleep_or_stop(stop, delay_s)
            with contextlib.suppress(RedisError, OSError):
                await self._finish_recording()
        finally:
            # Stopped or crashed: what was in flight stays pending in Redis and is read
            # again; main's connection is in an unknown state.
            await self._drop_pipeline()
            await self.close()
        await self.heartbeat.send_safely("stopped")
        with contextlib.suppress(RedisError, OSError):
            await self._lease.release()

    async def _pass(self, block_ms: int) -> float:
        """One turn of ``run_forever``: how long to wait before the next. Main or Redis being
        away ends here; only a bug raises."""
        try:
            settled = await self.run_once(block_ms=block_ms, pipelined=True)
        except SchemaHold as hold:
            await self._drop_pipeline()
            await self._hold(hold)
            # Back well within the lease's life: a held processor keeps its lease (a new
            # epoch every retry would fence main again for nothing).
            return min(self._schema_hold_retry_s, self._lease.ttl_s / 3)
        except TransientReplayError as exc:
            await self._drop_pipeline()
            delay_s = self._backoff.next_delay_s()
            log.warning("replay failed, retrying in %.2fs: %s", delay_s, exc)
            await self.heartbeat.send_safely("backoff", error=str(exc), retry_in_s=delay_s)
            return delay_s
        except (RedisError, OSError) as exc:
            # Redis itself is away (restarting): nothing to do until it is back.
            self._consumer.forget_group()
            await self._drop_pipeline()
            delay_s = self._backoff.next_delay_s()
            log.warning("redis unavailable, retrying in %.2fs: %s", delay_s, exc)
            return delay_s
        self._backoff.reset()
        if settled and self._held_since_ms is not None:
            log.info("replay resumed: main and this site agree on the schema again")
            self._held_since_ms = None
        return self._poll_interval_s * 10 if settled == 0 and not self._lease.held else 0.0

    async def _hold(self, hold: SchemaHold) -> None:
        """Say why the replay waits, where status, metrics and the console read it, and tell
        main what this site holds (the contract step waits for it); neither may raise."""
        if self._held_since_ms is None:
            self._held_since_ms = int(time.time() * 1000)
            log.warning("replay held (%s): %s", hold.code, hold.reason)
        await self.heartbeat.send_safely(
            "held",
            hold_code=hold.code,
            hold_reason=hold.reason,
            held_since=self._held_since_ms,
            retry_in_s=self._schema_hold_retry_s,
        )
        with contextlib.suppress(TransientReplayError, LeaseSuperseded, RedisError, OSError):
            await self.upkeep.report_backlog(force=True)

    async def report_crash(self, crash: Crash) -> None:
        """Say in the heartbeat at once that the loop crashed (the supervisor restarts it)."""
        await self.heartbeat.send_safely("crashed", error=f"{crash.loop}: {crash.error}")

    async def close(self) -> None:
        await self.upkeep.close()
        await self._executor.close()

    async def backlog(self) -> tuple[int, int]:
        """(transactions not yet applied, applied ones the replica has not shown yet)."""
        async with self._redis.pipeline(transaction=False) as pipe:
            pipe.xlen(self._keys.stream)
            pipe.zcard(self._keys.applied)
            waiting, unseen = await pipe.execute()
        return int(waiting), int(unseen)

    async def _claim(self, block_ms: int | None) -> list[StreamEntry]:
        if entries := await self._consumer.take_prefetched():
            return entries
        # Our pending entries must not include a batch whose outcome is still being recorded.
        await self._finish_recording()
        # Our own pending entries first: they were claimed before a crash or a failed try.
        return await self._consumer.read_pending() or await self._consumer.read_new(block_ms)

    async def _finish_recording(self) -> None:
        recording, self._recording = self._recording, None
        if recording is not None:
            await recording

    async def _drop_pipeline(self) -> None:
        """Forget in-memory work after a failure; whatever Redis delivered stays pending there
        and is read again, in order, from the pending list."""
        await self._consumer.drop_prefetch()
        recording, self._recording = self._recording, None
        await cancel_and_wait(recording, RedisError, OSError)
        self._just_settled = {}

    async def _replay(self, entries: list[StreamEntry], *, pipelined: bool = False) -> int:
        vanished = [e.stream_id for e in entries if e.tx is None and e.unreadable is None]
        if vanished:
            await self._redis.xack(self._keys.stream, CONSUMER_GROUP, *vanished)
        txs = [e.tx for e in entries if e.tx is not None]
        unreadable = {e.tx_id: e.unreadable for e in entries if e.tx_id and e.unreadable}
        if not txs and not unreadable:
            return len(vanished)

        for tx in txs:
            if (hold := hold_reason(tx)) is not None:
                raise hold
        triage = await self._book.triage(txs, unreadable, self._just_settled)
        to_main = [
            tx
            for tx in txs
            if tx.envelope.tx_id not in triage.refused and tx.envelope.tx_id not in triage.held
        ]
        outcome = BatchOutcome()
        batch_ms = 0.0
        if to_main:
            # An fsynced Redis write: sent while the batch is on the WAN, not before it.
            beat = asyncio.create_task(self.heartbeat.send("applying", batch=len(to_main)))
            if pipelined:
                self._consumer.prefetch()
            started = time.perf_counter()
            try:
                outcome = await self._executor.apply(to_main, self._lease.epoch)
            except TransientReplayError as exc:
                await self._book.note_attempt(to_main, str(exc))
                raise
            except LeaseSuperseded as exc:
                log.warning("lease superseded on main: %s", exc)
                await self._lease.lose(min_epoch=exc.fence_epoch)
                return 0
            finally:
                with contextlib.suppress(RedisError, OSError):
                    await beat
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
        stream_ids = {e.tx_id: e.stream_id for e in entries if e.tx_id}
        if pipelined:
            self._just_settled = {
                **dict.fromkeys(outcome.applied, b"applied"),
                **dict.fromkeys(outcome.duplicates, b"applied"),
                **dict.fromkeys([*outcome.failed, *triage.refused], b"failed"),
                **dict.fromkeys(triage.held, b"buffered"),
            }
            self._recording = asyncio.create_task(
                self._record(stream_ids, outcome, triage, batch_ms)
            )
        else:
            self._just_settled = {}
            await self._record(stream_ids, outcome, triage, batch_ms)
            # Pipelined, the next pass says it (idle, or applying the next batch) without a
            # second fsynced write between two batches.
            await self.heartbeat.send("idle", batch=len(txs))
        return len(entries)

    async def _record(
        self, stream_ids: dict[str, str], outcome: BatchOutcome, triage: Triage, batch_ms: float
    ) -> None:
        if await self._book.record(stream_ids, outcome, triage, batch_ms) and self.on_applied:
            self.on_applied(outcome.lsn)
        if self._horizon is not None and outcome.durable_lsn is not None:
            await self._horizon.release(outcome.durable_lsn)
