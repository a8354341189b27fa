"""Whether the site's Redis can keep what the buffer acknowledges: the append-only file on,
fsynced on every write, no eviction, on the primary and on every replica streaming from it.

Checked as the gateway starts and every ``RECHECK_S`` after, since a Redis can be restarted
with another configuration, or replaced, under a running gateway; every ``RETRY_S`` while
the primary does not answer. While a check finds a problem, or none has succeeded yet,
``WriteBuffer`` refuses writes with 503 and the reason, and /health says the same.
"""

from __future__ import annotations

import asyncio
import logging

from redis.asyncio import Redis
from redis.exceptions import RedisError

from ccat_api.buffering.buffer import WriteBuffer
from ccat_api.buffering.wire import text_map
from ccat_api.waits import sleep_or_stop

log = logging.getLogger(__name__)

RECHECK_S = 30.0
RETRY_S = 2.0
# One check must not hang on a Redis (or replica) that takes the connection and says nothing.
CHECK_TIMEOUT_S = 5.0
NOT_CHECKED = "its durability has not been checked yet: Redis has not answered since the start"


def durability_problem(config: dict[str, str]) -> str | None:
    """Why a Redis with this configuration could lose or drop an acknowledged write."""
    if config.get("appendonly") != "yes":
        return "appendonly is off: a Redis restart would lose buffered writes"
    if config.get("appendfsync") != "always":
        return (
            f"appendfsync is {config.get('appendfsync')!r}: writes acknowledged in the last"
            " second could be lost; set appendfsync always"
        )
    if config.get("maxmemory-policy") != "noeviction":
        return (
            f"maxmemory-policy is {config.get('maxmemory-policy')!r}: a full Redis would evict"
            " buffered writes; set noeviction"
        )
    return None


async def _config(redis: Redis) -> dict[str, str]:
    async with redis.pipeline(transaction=False) as pipe:
        pipe.config_get("append*")
        pipe.config_get("maxmemory-policy")
        appends, policy = await pipe.execute()
    return {**text_map(appends), **text_map(policy)}


class DurabilityCheck:
    def __init__(self, redis: Redis, buffer: WriteBuffer, *, require: bool) -> None:
        self._redis = redis
        self._buffer = buffer
        self._require = require
        self.checked = False
        self.problem: str | None = None
        if require:
            buffer.refuse(NOT_CHECKED)

    async def run_once(self) -> str | None:
        """Check the primary and its replicas now and have the buffer take or refuse writes
        by the answer; returns the problem, or None. Raises ``RedisError``, ``OSError`` or
        ``TimeoutError`` if the primary does not answer; then nothing changes."""
        async with asyncio.timeout(CHECK_TIMEOUT_S):
            if not self.checked:
                await self._buffer.warm_up()
            problem = durability_problem(await _config(self._redis))
            if problem is None:
                problem = await self._replicas_problem()
        if problem != self.problem:
            if problem is None:
                log.info("the write buffer's Redis is durable")
            else:
                log.warning("the write buffer's Redis is not durable: %s", problem)
        self.checked, self.problem = True, problem
        self._buffer.refuse(
            f"Redis is not durable: {problem}" if problem and self._require else None
        )
        return problem

    async def run_forever(self, stop: asyncio.Event) -> None:
        """Check again every ``RECHECK_S``, or ``RETRY_S`` until a check gets an answer."""
        delay_s = RECHECK_S if self.checked else RETRY_S
        unanswered = False
        while True:
            await sleep_or_stop(stop, delay_s)
            if stop.is_set():
                return
            try:
                await self.run_once()
            except (RedisError, OSError, TimeoutError) as exc:
                if not unanswered:
                    log.warning("cannot check the write buffer's Redis: %s", str(exc) or repr(exc))
                unanswered, delay_s = True, RETRY_S
            else:
                unanswered, delay_s = False, RECHECK_S

    async def _replicas_problem(self) -> str | None:
        """The first replica that would not keep an acknowledged write: where the site WAITs
        for a replica, a write's survival rests on that replica's disk too. A replica this
        gateway cannot reach is only logged: the primary's own fsync still holds."""
        info = await self._redis.info("replication")
        credentials = self._redis.connection_pool.connection_kwargs
        for key, replica in info.items():
            if not (key.startswith("slave") and isinstance(replica, dict)):
                continue
            host, port = str(replica["ip"]), int(replica["port"])
            client = Redis(
                host=host,
                port=port,
                username=credentials.get("username"),
                password=credentials.get("password"),
                socket_connect_timeout=2,
                socket_timeout=2,
            )
            try:
                problem = durability_problem(await _config(client))
            except (RedisError, OSError) as exc:
                log.warning("cannot check the durability of replica %s:%d: %s", host, port, exc)
                continue
            finally:
                await client.aclose()
            if problem is not None:
                return f"replica {host}:{port}: {problem}"
        return None
