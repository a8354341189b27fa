"""Backpressure: critical writes are refused (503) before the site's Redis reaches its
``maxmemory``, where it would refuse every write itself (``noeviction``, which the durability
check insists on) with an OOM error.

The gateway asks ``BufferCapacity.check()`` before a write is built, so a refused write
leaves nothing behind. It answers from the last reading of ``INFO memory``, taken in the
background at most every ``refresh_s`` while writes come: a write never waits for Redis
here. Between two readings the writes this process accepted are added at the per-write
growth seen lately, so a fast client cannot run past the threshold unseen.
"""

from __future__ import annotations

import asyncio
import logging
import time
from dataclasses import dataclass

from redis.asyncio import Redis
from redis.exceptions import RedisError

from ccat_api.errors import BufferNearCapacity

log = logging.getLogger(__name__)

REFRESH_S = 0.5
READ_TIMEOUT_S = 2.0
# Writes refused here wait for the processor to drain the buffer, which takes seconds at
# least; a client coming back sooner would only be refused again.
RETRY_AFTER_S = 5


@dataclass(frozen=True, slots=True)
class MemoryReading:
    used_bytes: int
    max_bytes: int  # 0: Redis has no memory limit
    read_at: float  # time.monotonic()

    @property
    def used_fraction(self) -> float | None:
        return self.used_bytes / self.max_bytes if self.max_bytes else None


class BufferCapacity:
    def __init__(self, redis: Redis, *, max_fraction: float, refresh_s: float = REFRESH_S) -> None:
        self._redis = redis
        self.max_fraction = max_fraction
        self._refresh_s = refresh_s
        self.reading: MemoryReading | None = None
        self._refreshing: asyncio.Task[None] | None = None
        # Writes accepted here since the last reading, and what a write has lately grown
        # used_memory by between two readings (the processor's drain only lowers the figure).
        self._accepted_since = 0
        self._write_bytes = 0.0

    def check(self) -> None:
        """Raise ``BufferNearCapacity`` when the buffer is at its threshold; start a new
        reading in the background when the last is older than ``refresh_s``."""
        reading = self.reading
        if (reading is None or time.monotonic() - reading.read_at >= self._refresh_s) and (
            self._refreshing is None
        ):
            self._refreshing = asyncio.create_task(self._refresh_in_background())
        refusal = self.refusal()
        if refusal is not None:
            raise BufferNearCapacity(refusal, retry_after_s=RETRY_AFTER_S)

    def refusal(self) -> str | None:
        """Why writes are refused now for the buffer's memory, or None."""
        reading = self.reading
        if reading is None or not reading.max_bytes:
            return None
        projected = reading.used_bytes + self._accepted_since * self._write_bytes
        if projected < self.max_fraction * reading.max_bytes:
            return None
        return (
            f"the write buffer is near capacity: Redis uses {reading.used_fraction:.0%} of its"
            f" maxmemory (writes are refused from {self.max_fraction:.0%} until the backlog"
            " drains); retry later"
        )

    def accepted(self) -> None:
        """A write this process just buffered."""
        self._accepted_since += 1

    async def current(self) -> MemoryReading:
        """The last reading, or a new one when it is older than ``refresh_s``."""
        reading = self.reading
        if reading is not None and time.monotonic() - reading.read_at < self._refresh_s:
            return reading
        return await self.read()

    async def read(self) -> MemoryReading:
        """Read ``INFO memory`` now (the status sampler; a background refresh)."""
        async with asyncio.timeout(READ_TIMEOUT_S):
            info = await self._redis.info("memory")
        reading = MemoryReading(
            used_bytes=int(info["used_memory"]),
            max_bytes=int(info.get("maxmemory", 0)),
            read_at=time.monotonic(),
        )
        previous, writes = self.reading, self._accepted_since
        if previous is not None and writes:
            # Up at once (underestimating is what would let a write through), down by half a
            # reading: the first interval after a start also holds the connections' and the
            # scripts' memory, several times what a write takes.
            growth = max(0.0, (reading.used_bytes - previous.used_bytes) / writes)
            self._write_bytes = max(growth, (self._write_bytes + growth) / 2)
        self.reading, self._accepted_since = reading, 0
        return reading

    async def _refresh_in_background(self) -> None:
        try:
            await self.read()
        except (RedisError, OSError, TimeoutError) as exc:
            # No verdict without a reading: the write itself then meets Redis and is refused
            # with what is really wrong.
            log.debug("cannot read the buffer's memory: %s", exc)
            self.reading = None
        finally:
            self._refreshing = None

    async def close(self) -> None:
        task = self._refreshing
        if task is not None:
            task.cancel()
            await asyncio.gather(task, return_exceptions=True)
