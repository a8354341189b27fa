"""The site's background work: the processor and the LSN tracker, run while holding the lease.

Any number of gateway workers may run one; the lease makes exactly one of them active, and
the others stand by and take over within a lease TTL if it dies. Each loop runs supervised
(``supervisor.py``): an exception the loop did not expect ends in a restart, logged, counted
and reported in /health, never in a worker that silently stopped replaying.
"""

from __future__ import annotations

import asyncio
import logging

from redis.exceptions import RedisError

from ccat_api.buffering.lease import Lease
from ccat_api.buffering.processor import Processor
from ccat_api.buffering.tracker import LsnTracker, ReplicaUnavailable
from ccat_api.supervisor import Faults, supervise
from ccat_api.waits import first_of

log = logging.getLogger(__name__)
IDLE_CHECK_S = 1.0
RETRY_S = 1.0


class SiteWorker:
    def __init__(self, processor: Processor, tracker: LsnTracker, lease: Lease) -> None:
        self.processor = processor
        self.tracker = tracker
        self.lease = lease
        self.faults = Faults()
        processor.on_applied = tracker.note_applied
        processor.heartbeat.faults = self.faults

    async def run(self, stop: asyncio.Event) -> None:
        """Both loops until ``stop``, each restarted after a crash; returns only when stopped."""
        await asyncio.gather(
            supervise(
                "processor", lambda: self.processor.run_forever(stop), stop,
                faults=self.faults, on_crash=self.processor.report_crash,
            ),
            supervise("tracker", lambda: self._track(stop), stop, faults=self.faults),
        )  # fmt: skip

    async def _track(self, stop: asyncio.Event) -> None:
        try:
            while not stop.is_set():
                self.tracker.wakeup.clear()
                delay_s: float | None = None
                if self.lease.held:
                    try:
                        await self.tracker.run_once()
                    except ReplicaUnavailable as exc:
                        log.warning("%s; overlay kept until it is back", exc)
                        delay_s = RETRY_S
                    except (RedisError, OSError) as exc:
                        log.warning("redis unavailable for the tracker: %s", exc)
                        delay_s = RETRY_S
                if delay_s is None:
                    # Poll the replica while something waits; otherwise sleep until the
                    # processor applies a batch, looking in Redis now and then for work
                    # applied elsewhere.
                    delay_s = self.tracker.poll_interval_s if self.tracker.waiting else IDLE_CHECK_S
                await first_of(stop, self.tracker.wakeup, timeout_s=delay_s)
        finally:
            # Stopped or crashed: the replica connection's state is unknown either way.
            await self.tracker.close()
