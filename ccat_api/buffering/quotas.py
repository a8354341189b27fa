"""Per-token write quotas: a token may make ``write_rate_limit`` critical writes per window;
more get 429 with ``Retry-After`` (the end of the window).

Counted by the ``limits`` library with a fixed window: one atomic script per write (an INCR
that sets the window's expiry) in the site's Redis, under ``SiteKeys.quota_prefix``, so every
gateway of a site shares a token's count; in this process's memory at a site without Redis.
"""

from __future__ import annotations

import logging
import math
import time

import limits
from limits.aio.storage import MemoryStorage, RedisStorage, Storage
from limits.aio.strategies import FixedWindowRateLimiter
from redis.asyncio import Redis
from redis.asyncio.retry import Retry
from redis.backoff import ExponentialBackoff
from redis.exceptions import RedisError

from ccat_api.buffering.keys import SiteKeys
from ccat_api.errors import BufferUnavailable, RateLimited

log = logging.getLogger(__name__)


class WriteQuota:
    def __init__(
        self, limit: str, *, redis: Redis | None, keys: SiteKeys, redis_required: bool
    ) -> None:
        """``redis_required``: the site's writes need its Redis anyway (a secondary site), so a
        quota that cannot be counted refuses the write; elsewhere it lets the write through."""
        self.limit = limits.parse(limit)
        storage: Storage
        if redis is None:
            storage = MemoryStorage()
        else:
            # The gateway's own connection pool (and, with Sentinels, its failover), retried
            # like the gateway's client: redis-py's default backs off for up to 10 s.
            storage = RedisStorage(
                "async+redis://",
                implementation="redispy",
                key_prefix=keys.quota_prefix,
                connection_pool=redis.connection_pool,  # type: ignore[arg-type]
                retry=Retry(ExponentialBackoff(cap=0.5, base=0.05), retries=3),  # type: ignore[arg-type]
            )
        self._limiter = FixedWindowRateLimiter(storage)
        self._redis_required = redis_required

    async def spend(self, principal: str) -> None:
        """Count one write of ``principal``; raise ``RateLimited`` when it is over quota."""
        try:
            if await self._limiter.hit(self.limit, principal):
                return
            stats = await self._limiter.get_window_stats(self.limit, principal)
        except (RedisError, OSError) as exc:
            if self._redis_required:
                raise BufferUnavailable(f"the write buffer is unavailable now: {exc}") from exc
            log.warning("cannot count a write against its quota; letting it through: %s", exc)
            return
        retry_after_s = max(1, math.ceil(stats.reset_time - time.time()))
        raise RateLimited(
            f"this token has used its quota of critical writes ({self.limit}); retry after"
            f" {retry_after_s} s",
            retry_after_s=retry_after_s,
        )
