"""The site status over the last hours, for the console's charts: one ``HistorySample`` per
``history_interval_s`` for the whole site, kept for ``history_retention_s``.

Every gateway process runs a ``HistoryRecorder``. Where the site has Redis its processes share
one stream (``P:history``) whose entry ids are the periods' starts: when two processes sample
the same period, Redis keeps the first and refuses the second (an id not above the last), so
there is one sample per period without a lease, and any process serves the same history.
Where the site has no Redis (a main site may run without one), each process keeps its own
samples in memory. Either way the count is capped at retention / interval.

Rates come from the site-wide counters of two consecutive samples, not from one process's
window, so they are the same whichever process took the sample.
"""

from __future__ import annotations

import asyncio
import logging
import math
import random
import time
from collections import deque
from collections.abc import Awaitable, Callable
from typing import Protocol

from redis.asyncio import Redis
from redis.exceptions import RedisError, ResponseError

from ccat_api.buffering.wire import text_map
from ccat_api.live.models import HistorySample, SiteStatus
from ccat_api.live.status import drain_estimate_s
from ccat_api.waits import sleep_or_stop

log = logging.getLogger(__name__)

# A rate over a longer gap than this many periods (Redis was away, every gateway stopped)
# would read as a calm average: the sample after a gap has none.
RATE_MAX_GAP_PERIODS = 3
# Processes wake up to this far into a period (at most), so the first one samples and the
# others find the period taken before they sample the site for nothing.
WAKE_SPREAD_S = 1.0
FIELD = "sample"


class HistoryStore(Protocol):
    async def latest(self) -> HistorySample | None: ...

    async def add(self, sample: HistorySample) -> bool:
        """Keep ``sample`` unless its period (``at``) is not after the latest one's."""
        ...

    async def since(self, after_s: float) -> list[HistorySample]:
        """Samples taken after ``after_s``, oldest first."""
        ...


class RedisHistory:
    """The site's samples in its Redis, shared by every gateway process of the site."""

    def __init__(self, redis: Redis, key: str, *, max_samples: int) -> None:
        self._redis = redis
        self._key = key
        self._max_samples = max_samples

    async def latest(self) -> HistorySample | None:
        entries = await self._redis.xrevrange(self._key, count=1)
        return _decode(entries[0][1]) if entries else None

    async def add(self, sample: HistorySample) -> bool:
        try:
            await self._redis.xadd(
                self._key,
                {FIELD: sample.model_dump_json(exclude_none=True)},
                id=f"{_ms(sample.at)}-0",
                maxlen=self._max_samples,
                approximate=False,
            )
        except ResponseError as exc:
            if "equal or smaller" in str(exc):
                return False  # another process took this period
            raise
        return True

    async def since(self, after_s: float) -> list[HistorySample]:
        entries = await self._redis.xrange(self._key, min=f"({_ms(after_s)}")
        return [_decode(fields) for _, fields in entries or ()]


class MemoryHistory:
    """One process's samples, where the site has no Redis."""

    def __init__(self, *, max_samples: int) -> None:
        self._samples: deque[HistorySample] = deque(maxlen=max_samples)

    async def latest(self) -> HistorySample | None:
        return self._samples[-1] if self._samples else None

    async def add(self, sample: HistorySample) -> bool:
        if self._samples and _ms(self._samples[-1].at) >= _ms(sample.at):
            return False
        self._samples.append(sample)
        return True

    async def since(self, after_s: float) -> list[HistorySample]:
        return [s for s in self._samples if _ms(s.at) > _ms(after_s)]


class HistoryRecorder:
    def __init__(
        self,
        status: Callable[[], Awaitable[SiteStatus]],
        store: HistoryStore,
        *,
        interval_s: float,
        retention_s: float,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self._status = status
        self.store = store
        self.interval_s = interval_s
        self.retention_s = retention_s
        self._clock = clock
        self._failing = False

    def period_start(self, now_s: float) -> float:
        # In whole milliseconds, as the stream's ids count, so a period's start reads the same
        # in every process (and in the id) without float noise.
        interval_ms = max(1, _ms(self.interval_s))
        return math.floor(_ms(now_s) / interval_ms) * interval_ms / 1000

    async def run_once(self) -> HistorySample | None:
        """Sample the current period unless a process of the site already has; the sample
        kept, or None."""
        at = self.period_start(self._clock())
        latest = await self.store.latest()
        if latest is not None and _ms(latest.at) >= _ms(at):
            return None
        sample = history_sample(
            await self._status(), at=at, previous=latest, interval_s=self.interval_s
        )
        return sample if await self.store.add(sample) else None

    async def run_forever(self, stop: asyncio.Event) -> None:
        while not stop.is_set():
            try:
                await self.run_once()
            except (RedisError, OSError, TimeoutError) as exc:
                # The charts show the gap; the status tiles already say Redis is down.
                if not self._failing:
                    log.warning("history: no sample while Redis does not answer: %s", exc)
                self._failing = True
            else:
                if self._failing:
                    log.info("history: sampling again")
                self._failing = False
            now = self._clock()
            wait_s = self.period_start(now) + self.interval_s - now
            spread_s = min(WAKE_SPREAD_S, self.interval_s / 4)
            await sleep_or_stop(stop, wait_s + random.uniform(0, spread_s))

    async def recent(self, since_s: float | None) -> list[HistorySample]:
        """Samples within the retention, after ``since_s`` if given, oldest first."""
        oldest_s = self._clock() - self.retention_s
        return await self.store.since(max(oldest_s, since_s if since_s is not None else oldest_s))


def history_sample(
    status: SiteStatus, *, at: float, previous: HistorySample | None, interval_s: float
) -> HistorySample:
    buffer = status.buffer
    replica = status.replica
    # A counter the site has not counted yet is 0 (the hash gets fields as they first move).
    accepted = status.counters.get("accepted", 0) if buffer is not None else None
    applied = status.counters.get("applied", 0) if buffer is not None else None
    accept_rate = drain_rate = None
    if previous is not None and 0 < at - previous.at <= RATE_MAX_GAP_PERIODS * interval_s:
        accept_rate = _rate(previous.accepted, accepted, at - previous.at)
        drain_rate = _rate(previous.applied, applied, at - previous.at)
    depth = buffer.depth if buffer is not None else None
    return HistorySample(
        at=at,
        depth=depth,
        oldest_pending_age_s=buffer.oldest_pending_age_s if buffer is not None else None,
        accepted=accepted,
        applied=applied,
        accept_rate_tx_s=accept_rate,
        drain_rate_tx_s=drain_rate,
        estimated_drain_s=None if depth is None else drain_estimate_s(depth, drain_rate),
        replica_apply_lag_s=replica.apply_lag_s if replica is not None and replica.ok else None,
        main_ok=status.main.get("ok") if isinstance(status.main.get("ok"), bool) else None,
    )


def _rate(before: int | None, after: int | None, elapsed_s: float) -> float | None:
    # A counter that went down was reset (a Redis that lost its data): no rate across it.
    if before is None or after is None or after < before:
        return None
    return round((after - before) / elapsed_s, 2)


def _ms(seconds: float) -> int:
    return round(seconds * 1000)


def _decode(fields: object) -> HistorySample:
    return HistorySample.model_validate_json(text_map(fields)[FIELD])
