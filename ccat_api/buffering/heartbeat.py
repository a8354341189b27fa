"""The processor's heartbeat: one Redis hash per site saying what the replay does now (idle,
applying, backoff, held, standby, crashed, stopped), by whom and under which lease epoch.

Status, metrics and the console read it; every beat is an fsynced write, so a repeated state
is sent at most once a second. ``send_safely`` is for failure handling: Redis may be the
failure, and the handling must not fail with it.
"""

from __future__ import annotations

import logging
import os
import socket
import time

from redis.asyncio import Redis
from redis.exceptions import RedisError

from ccat_api.buffering.keys import SiteKeys
from ccat_api.buffering.lease import Lease
from ccat_api.supervisor import Faults

log = logging.getLogger(__name__)

HEARTBEAT_INTERVAL_S = 1.0


class Heartbeat:
    def __init__(self, redis: Redis, keys: SiteKeys, lease: Lease, *, ttl_ms: int) -> None:
        self._redis = redis
        self._keys = keys
        self._lease = lease
        self._ttl_ms = ttl_ms
        self._identity = f"{socket.gethostname()}:{os.getpid()}"
        self._last: tuple[str, float] = ("", 0.0)
        # The site worker's crash record, carried by every heartbeat so all gateways see it.
        self.faults: Faults | None = None

    async def send(self, state: str, **details: object) -> None:
        now = time.monotonic()
        last_state, last_at = self._last
        if state == last_state and not details and now - last_at < HEARTBEAT_INTERVAL_S:
            return
        self._last = (state, now)
        fields: dict[str, str] = {
            "state": state,
            "consumer": self._identity,
            "epoch": str(self._lease.epoch or ""),
            "updated_at": str(int(time.time() * 1000)),
        }
        fields.update({k: str(v) for k, v in details.items()})
        if self.faults is not None:
            fields.update(self.faults.fields())
        async with self._redis.pipeline(transaction=False) as pipe:
            pipe.delete(self._keys.processor)
            pipe.hset(self._keys.processor, mapping=fields)  # type: ignore[arg-type]
            pipe.pexpire(self._keys.processor, self._ttl_ms)
            await pipe.execute()

    async def send_safely(self, state: str, **details: object) -> None:
        """A heartbeat sent while a failure is handled: never raises."""
        try:
            await self.send(state, **details)
        except (RedisError, OSError) as exc:
            log.debug("heartbeat %r not sent: %s", state, exc)
