"""The site's background work: the processor and the LSN tracker, run while holding the lease.

Any number of gateway workers may run one; the lease makes exactly one of them active, and
the others stand by and take over within a lease TTL if it dies.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging

from redis.exceptions import RedisError

from ccat_api.buffering.lease import Lease
from ccat_api.buffering.processor import Processor
from ccat_api.buffering.tracker import LsnTracker, ReplicaUnavailable

log = logging.getLogger(__name__)


class SiteWorker:
    def __init__(self, processor: Processor, tracker: LsnTracker, lease: Lease) -> None:
        self.processor = processor
        self.tracker = tracker
        self.lease = lease

    async def run(self, stop: asyncio.Event) -> None:
        await asyncio.gather(self.processor.run_forever(stop), self._track(stop))

    async def _track(self, stop: asyncio.Event) -> None:
        while not stop.is_set():
            delay_s = self.tracker.poll_interval_s
            if self.lease.held:
                try:
                    await self.tracker.run_once()
                except ReplicaUnavailable as exc:
                    log.warning("%s; overlay kept until it is back", exc)
                    delay_s = 1.0
                except (RedisError, OSError) as exc:
                    log.warning("redis unavailable for the tracker: %s", exc)
                    delay_s = 1.0
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), timeout=delay_s)
        await self.tracker.close()
