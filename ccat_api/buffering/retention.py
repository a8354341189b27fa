"""Retention at a site: the Redis side of keeping every structure bounded, and the watermark
main prunes its bookkeeping by (``db/pruning.py`` is the same concept on main).

The processor sweeps now and then, busy or idle: retention.lua drops settled transactions from
the unsettled index and expired ones from the recent index, and answers the site's
watermark, the lowest seq the site may still send to main. Everything below it is settled for
good (applied on main, or failed and re-sent, if ever, under a new seq, or discarded), so
main may forget those transactions' rows and still refuse them if they come again.
"""

from __future__ import annotations

from dataclasses import dataclass

from redis.asyncio import Redis

from ccat_api.buffering.keys import SiteKeys
from ccat_api.buffering.scripts import Scripts

# Members of an index one script call looks at: about a millisecond of Redis's time.
SWEEP_CHUNK = 1000
# A sweep stops after this many calls (a million members); the next one goes on.
SWEEP_CALLS_MAX = 1000


@dataclass(frozen=True, slots=True)
class Sweep:
    watermark: int
    # Members dropped from the unsettled index; expired ones from the recent and visible
    # indexes (the buckets of visible statuses).
    unsettled_dropped: int
    recent_trimmed: int


class SiteRetention:
    def __init__(self, redis: Redis, keys: SiteKeys, *, chunk: int = SWEEP_CHUNK) -> None:
        self._keys = keys
        self._scripts = Scripts(redis)
        self._chunk = chunk

    async def sweep(self) -> Sweep:
        """Drop what is settled or expired, in chunks that keep Redis responsive; the
        watermark as of the last chunk."""
        dropped = trimmed = 0
        watermark = 0
        for _ in range(SWEEP_CALLS_MAX):
            watermark, chunk_dropped, chunk_trimmed = await self._scripts.retention(
                keys=[
                    self._keys.unsettled,
                    self._keys.recent,
                    self._keys.seq,
                    self._keys.visible,
                    self._keys.visible_count,
                ],
                args=[self._keys.tx_prefix, self._chunk, self._keys.visible_prefix],
            )
            dropped += int(chunk_dropped)
            trimmed += int(chunk_trimmed)
            # Trimming went on while any member of the low end had expired: the next call
            # looks at the members behind them.
            if int(chunk_dropped) < self._chunk and int(chunk_trimmed) == 0:
                break
        return Sweep(int(watermark), dropped, trimmed)
