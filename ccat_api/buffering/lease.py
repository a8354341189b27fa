"""The per-site processor lease: at most one processor replays a site's stream at a time.

The lease is a Redis key with a random token and a TTL; each acquisition also takes a new
epoch from a counter. Redis alone cannot stop a paused processor whose lease expired from
writing, so the epoch is checked again on main (``replay_fences``): a deposed processor's
batch is refused there.

A renewal that fails (Redis does not answer) or finds the lease taken is logged and counted
(``ccat_lease_renewal_failures_total``): either is how two processors come to overlap.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import secrets
import time
from collections.abc import AsyncIterator

from redis.asyncio import Redis
from redis.exceptions import RedisError

from ccat_api.buffering.keys import SiteKeys
from ccat_api.metrics import LEASE_RENEWAL_FAILURES
from ccat_api.waits import cancel_and_wait

log = logging.getLogger(__name__)

_RENEW = """
if redis.call('GET', KEYS[1]) == ARGV[1] then
  return redis.call('PEXPIRE', KEYS[1], ARGV[2])
end
return 0
"""

_RELEASE = """
if redis.call('GET', KEYS[1]) == ARGV[1] then
  return redis.call('DEL', KEYS[1])
end
return 0
"""


class Lease:
    def __init__(self, redis: Redis, keys: SiteKeys, ttl_s: float) -> None:
        self._redis = redis
        self._keys = keys
        self._ttl_ms = int(ttl_s * 1000)
        self._token = secrets.token_hex(16)
        self._renew = redis.register_script(_RENEW)
        self._release = redis.register_script(_RELEASE)
        self.epoch: int | None = None
        self._renewed_at = 0.0

    @property
    def ttl_s(self) -> float:
        return self._ttl_ms / 1000

    @property
    def held(self) -> bool:
        return self.epoch is not None

    async def ensure(self) -> bool:
        """Keep the lease if we hold it, take it if it is free; True while we hold it."""
        now = time.monotonic()
        if self.epoch is not None:
            # Renewing is a write (an fsync with appendfsync always), so it happens a third
            # of the TTL apart; in between, a read confirms nobody took the lease while we
            # were paused.
            if now - self._renewed_at >= self._ttl_ms / 3000:
                held = await self._renewed()
            else:
                held = await self._redis.get(self._keys.lease) == self._token.encode()
                if not held:
                    self._lost()
            if held:
                return True
            self.epoch = None
        acquired = await self._redis.set(self._keys.lease, self._token, nx=True, px=self._ttl_ms)
        if acquired:
            self.epoch = int(await self._redis.incr(self._keys.lease_epoch))
            self._renewed_at = now
        return self.epoch is not None

    async def _renewed(self) -> bool:
        """Renew the lease we hold: True if it is still ours. Raises if Redis does not answer."""
        try:
            held = bool(
                await self._renew(keys=[self._keys.lease], args=[self._token, self._ttl_ms])
            )
        except (RedisError, OSError) as exc:
            LEASE_RENEWAL_FAILURES.labels("error").inc()
            log.warning("could not renew the processor lease (epoch %s): %s", self.epoch, exc)
            raise
        if held:
            self._renewed_at = time.monotonic()
        else:
            self._lost()
        return held

    def _lost(self) -> None:
        LEASE_RENEWAL_FAILURES.labels("lost").inc()
        log.warning("the processor lease (epoch %s) expired or was taken over", self.epoch)

    async def release(self) -> None:
        if self.epoch is not None:
            await self._release(keys=[self._keys.lease], args=[self._token])
            self.epoch = None

    async def lose(self, min_epoch: int | None = None) -> None:
        """Main refused our epoch. If main has seen an epoch the counter never issued (Redis
        lost its data), lift the counter past it so a legitimate successor is not refused
        forever; the lease key itself still decides who that successor is."""
        self.epoch = None
        if min_epoch is not None:
            current = int(await self._redis.get(self._keys.lease_epoch) or 0)
            if current < min_epoch:
                await self._redis.set(self._keys.lease_epoch, min_epoch)
        await self._release(keys=[self._keys.lease], args=[self._token])

    @contextlib.asynccontextmanager
    async def kept_alive(self) -> AsyncIterator[None]:
        """Renew in the background while a long batch is in flight over a slow link."""

        done = asyncio.Event()

        async def renew() -> None:
            # Ended by ``done``, not only by cancellation: the Redis client's retry can swallow
            # a CancelledError that lands during a renewal, and a loop that only cancellation
            # ends would then renew (and hold) the lease forever while the caller waits for it.
            while not done.is_set():
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(done.wait(), self._ttl_ms / 3000)
                if done.is_set():
                    return
                # One failed renewal must not end the renewals: Redis may be back before the
                # lease runs out. A lease found taken is over; main's fence refuses the batch.
                with contextlib.suppress(RedisError, OSError):
                    if not await self._renewed():
                        return

        task = asyncio.create_task(renew())
        try:
            yield
        finally:
            done.set()
            await cancel_and_wait(task, Exception)
