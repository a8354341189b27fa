"""A critical write is acknowledged only once the replicas the site requires have it.

The site's Redis fsyncs its AOF before it replies (``appendfsync always``); with a replica and
Sentinel, a 2xx must also survive losing that machine. Redis 7.0 has WAIT (not WAITAOF): it
blocks until replicas acknowledged this connection's writes. The accept script may run on
another pooled connection, so this one writes a probe after it and WAITs for the probe:
replication is one ordered stream, so a replica that has the probe has the write.

Too few replicas in time: a 503 that says so. The write itself stays buffered and will be
replayed; a retry with the same Idempotency-Key gets the first answer once it is confirmed.
A primary cut off from every replica refuses writes outright (``min-replicas-to-write``).
"""

from __future__ import annotations

from redis.asyncio import Redis
from redis.exceptions import RedisError

from ccat_api.buffering.keys import SiteKeys
from ccat_api.errors import BufferUnavailable


class ReplicaConfirmation:
    def __init__(self, redis: Redis, keys: SiteKeys, *, replicas: int, timeout_ms: int) -> None:
        self._redis = redis
        self._probe = keys.replica_probe
        self.replicas = replicas
        self._timeout_ms = timeout_ms

    async def confirm(self) -> None:
        """Return once ``replicas`` replicas have everything this site's primary took so far."""
        if self.replicas == 0:
            return
        try:
            async with self._redis.pipeline(transaction=False) as pipe:
                pipe.incr(self._probe)
                pipe.wait(self.replicas, self._timeout_ms)
                _, acknowledged = await pipe.execute()
        except (RedisError, OSError) as exc:
            raise BufferUnavailable(f"the write buffer cannot confirm writes now: {exc}") from exc
        if int(acknowledged) < self.replicas:
            raise BufferUnavailable(
                f"the site's Redis took the write but only {acknowledged} of the"
                f" {self.replicas} replica(s) this site requires confirmed it within"
                f" {self._timeout_ms} ms, so it is not acknowledged; retry with the same"
                " Idempotency-Key"
            )
