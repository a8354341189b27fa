"""What the processor tells main and checks with it besides replaying batches: the site's
backlog (which a migration's contract step reads), its retention watermark (which main prunes
by), and, after each new connection, what a failover of main lost (``horizon.py``).

Only the processor (the lease holder) calls these. The horizon is followed on the replay's
own connection, before each batch it reads: main being away raises ``TransientReplayError``,
which the processor handles like a failed batch. The reports go over a connection of their
own and, in ``run_forever``, in the background: sent in line, two round trips every
``backlog_report_interval_s`` (four on a new connection) held back every write that arrived
meanwhile by as much, which was the tail of accepted-to-visible. Both reports only ever trail
the replay, so a report main cannot take is logged and tried again later, never retried as
a batch.
"""

from __future__ import annotations

import asyncio
import logging
import time

from redis.asyncio import Redis
from redis.exceptions import RedisError

from ccat_api.buffering.batches import LOGGED_TX_IDS_MAX, parse_entry
from ccat_api.buffering.envelope import SCHEMA_VERSION
from ccat_api.buffering.executor import BatchExecutor, LeaseSuperseded, TransientReplayError
from ccat_api.buffering.horizon import MainHorizon
from ccat_api.buffering.keys import SiteKeys
from ccat_api.buffering.lease import Lease
from ccat_api.buffering.retention import SiteRetention, Sweep
from ccat_api.metrics import REPLAYED_AFTER_FAILOVER
from ccat_api.waits import cancel_and_wait

log = logging.getLogger(__name__)

# How often an idle processor asks main's standbys how far they have flushed.
HORIZON_CHECK_INTERVAL_S = 1.0
# After reports main did not take, the pause before they are tried again (at most the
# report interval): they trail the replay, which has its own backoff.
REPORT_RETRY_S = 5.0


class MainUpkeep:
    def __init__(
        self,
        redis: Redis,
        keys: SiteKeys,
        replay: BatchExecutor,
        lease: Lease,
        *,
        report_interval_s: float,
        horizon: MainHorizon | None,
    ) -> None:
        self._redis = redis
        self._keys = keys
        self._replay = replay
        self._reports = replay.sibling()
        self._lease = lease
        self._report_interval_s = report_interval_s
        self._horizon = horizon
        self._retention = SiteRetention(redis, keys)
        self._last_report_at: float | None = None
        self._last_sweep_at: float | None = None
        self._last_release_at = 0.0
        self._started_at = time.monotonic()
        self._reporting: asyncio.Task[None] | None = None
        self._retry_reports_at = 0.0

    async def before_replay(self) -> None:
        """Before anything else on a new connection: a failover of main may have lost what
        this site had applied, and the watermark reported next must not pass it."""
        if self._horizon is not None:
            await self.follow_horizon()

    async def report(self, *, idle: bool, background: bool = False) -> None:
        """The backlog and watermark reports, each every ``report_interval_s``. A processor
        with work waiting sends its first ones only once that interval has passed (or the
        stream runs dry): on a slow link they would hold back the first batch after an
        outage. ``background`` sends them alongside the replay, one set at a time;
        otherwise they are sent when this returns."""
        now = time.monotonic()
        if not idle and now - self._started_at < self._report_interval_s:
            return
        if self._reporting is not None and not self._reporting.done():
            if not background:
                await self._reporting
            return
        if now < self._retry_reports_at or not self._reports_due(now):
            return
        self._reporting = asyncio.create_task(self._send_reports())
        if not background:
            await self._reporting

    def _reports_due(self, now: float) -> bool:
        return self._due(self._last_report_at, now) or self._due(self._last_sweep_at, now)

    def _due(self, last: float | None, now: float) -> bool:
        return last is None or now - last >= self._report_interval_s

    async def _send_reports(self) -> None:
        try:
            await self.report_backlog()
            await self.report_watermark()
        except (TransientReplayError, LeaseSuperseded, RedisError, OSError) as exc:
            retry_s = min(REPORT_RETRY_S, self._report_interval_s)
            self._retry_reports_at = time.monotonic() + retry_s
            log.warning("reports to main not sent, trying again in %.0fs: %s", retry_s, exc)

    async def close(self) -> None:
        """Stop a report in flight (main took it or it is sent again later) and close the
        reports' connection."""
        reporting, self._reporting = self._reporting, None
        await cancel_and_wait(reporting)
        await self._reports.close()

    async def follow_horizon(self) -> None:
        """On a new connection to main (perhaps a promoted standby), apply again what it lost
        before anything newer; otherwise, now and then, forget what its standbys now have."""
        assert self._horizon is not None
        await self._replay.ensure_connected()
        if self._replay.reconnected:
            self._replay.reconnected = False
            kept = await self._horizon.kept()
            if kept:
                missing = await self._replay.missing([tx.envelope.tx_id for tx in kept])
                lost = [tx for tx in kept if tx.envelope.tx_id in missing]
                if lost:
                    log.warning(
                        "main lacks %d transactions it had applied (a failover lost them);"
                        " applying them again",
                        len(lost),
                        extra={"tx_ids": [tx.envelope.tx_id for tx in lost][:LOGGED_TX_IDS_MAX]},
                    )
                    async with self._lease.kept_alive():
                        outcome = await self._replay.apply(lost, self._lease.epoch)
                    await self._horizon.reapplied(lost, outcome)
                    REPLAYED_AFTER_FAILOVER.inc(len(outcome.applied))
        now = time.monotonic()
        if now - self._last_release_at >= HORIZON_CHECK_INTERVAL_S:
            self._last_release_at = now
            if await self._horizon.count():
                durable = await self._replay.durable_lsn()
                if durable is not None:
                    await self._horizon.release(durable)

    async def report_backlog(self, *, force: bool = False) -> None:
        """Every ``backlog_report_interval_s`` (and while held): the code's envelope version,
        the oldest version still pending here and how many, for main's contract step.

        The stream is in acceptance order and a site's code only moves forward, so its first
        entry has the oldest version; entries moved to the end (held behind a dependency)
        come from the same window, so they do not change the answer."""
        now = time.monotonic()
        if not force and not self._due(self._last_report_at, now):
            return
        async with self._redis.pipeline(transaction=False) as pipe:
            pipe.xrange(self._keys.stream, count=1)
            pipe.xlen(self._keys.stream)
            pipe.zcard(self._keys.dead)
            first, waiting, dead = await pipe.execute()
        oldest: int | None = None
        if first:
            entry = parse_entry(*first[0])
            if entry.tx is not None:
                oldest = entry.tx.envelope.schema_version
        await self._reports.report_backlog(SCHEMA_VERSION, oldest, int(waiting) + int(dead))
        self._last_report_at = now

    async def report_watermark(self, *, force: bool = False) -> Sweep | None:
        """Every ``backlog_report_interval_s``: the site's retention sweep (``retention.py``)
        and the watermark it finds, told to main, which prunes its bookkeeping below it. A
        report main cannot take waits for the next one: it never stops the replay."""
        now = time.monotonic()
        if not force and not self._due(self._last_sweep_at, now):
            return None
        sweep = await self._retention.sweep()
        watermark = sweep.watermark
        if self._horizon is not None:
            # Applied, but a failover of main could still lose it and it would be sent again:
            # main must not refuse it as one below the watermark.
            lowest_kept = await self._horizon.lowest_seq()
            if lowest_kept is not None:
                watermark = min(watermark, lowest_kept)
        try:
            await self._reports.report_watermark(self._lease.epoch, watermark)
        except TransientReplayError as exc:
            log.warning("watermark %d not reported to main: %s", watermark, exc)
            return sweep
        self._last_sweep_at = now
        return sweep
