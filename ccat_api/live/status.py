"""The site at a glance: buffer depth and age, accept and drain rates, estimated drain time,
replica lag (WAN receive lag apart from apply lag), main's reachability, processor state.

One ``StatusSampler`` per process computes it (a Redis pipeline and one replica query) and
caches it briefly, so the console, ``ccat-api status``, the buffer WebSocket stream and
``/metrics`` all show the same figures without each asking Redis and the replica again.
A sample never fails because Redis or the replica does: it says which one is unavailable,
since that is exactly when an operator looks.
"""

from __future__ import annotations

import asyncio
import time
from collections import deque
from typing import Any

import sqlalchemy as sa
from redis.exceptions import RedisError

from ccat_api.buffering.capacity import MemoryReading
from ccat_api.buffering.ledger import BufferStats
from ccat_api.buffering.wire import text_map
from ccat_api.errors import first_line
from ccat_api.health import HealthProbe
from ccat_api.live.models import BufferStatus, RedisStatus, ReplicaStatus, SiteStatus
from ccat_api.runtime import Runtime

# Rates are measured over this window of samples: long enough to smooth batch-sized steps
# (the processor settles thousands at once), short enough to show a stall within it.
RATE_WINDOW_S = 30.0

REPLICA_LAG_SQL = sa.text(
    """
    SELECT pg_is_in_recovery() AS in_recovery,
           (pg_last_wal_receive_lsn() - '0/0'::pg_lsn)::bigint AS receive_lsn,
           (pg_last_wal_replay_lsn() - '0/0'::pg_lsn)::bigint AS replay_lsn,
           extract(epoch FROM now() - pg_last_xact_replay_timestamp())::float
             AS since_replayed_commit_s,
           (SELECT extract(epoch FROM last_msg_receipt_time - last_msg_send_time)::float
              FROM pg_stat_wal_receiver) AS wan_delay_s,
           (SELECT extract(epoch FROM now() - last_msg_receipt_time)::float
              FROM pg_stat_wal_receiver) AS since_wal_message_s
    """
)


class StatusSampler:
    def __init__(self, runtime: Runtime, health: HealthProbe, *, max_age_s: float = 1.0) -> None:
        self._runtime = runtime
        self._health = health
        self._max_age_s = max_age_s
        self._latest: SiteStatus | None = None
        self._lock = asyncio.Lock()
        self._history: deque[tuple[float, int, int]] = deque()

    async def current(self) -> SiteStatus:
        """The latest sample, taken anew when it is older than ``max_age_s``; concurrent
        callers share one sample."""
        async with self._lock:
            latest = self._latest
            if latest is None or time.time() - latest.sampled_at > self._max_age_s:
                latest = self._latest = await self.sample()
            return latest

    async def sample(self) -> SiteStatus:
        rt = self._runtime
        settings = rt.settings
        counters: dict[str, int] = {}
        buffer: BufferStatus | None = None
        processor: dict[str, str] | None = None
        redis: RedisStatus | None = None
        capacity = rt.gateway.capacity
        memory: MemoryReading | None = None
        degraded: list[str] = []
        if settings.is_secondary and rt.ledger is not None and rt.redis is not None:
            try:
                counters, stats = await self._buffer_figures()
                if capacity is not None:
                    memory = await capacity.current()
            except (RedisError, OSError, TimeoutError) as exc:
                redis = RedisStatus(ok=False, error=first_line(exc, "no answer"))
            else:
                redis = RedisStatus(ok=True)
                accept_rate, drain_rate = self._rates(counters)
                refusal = capacity.refusal() if capacity is not None else None
                if refusal is not None:
                    # Said where the console says why the site needs a look.
                    degraded.append(f"writes are refused: {refusal}")
                buffer = BufferStatus(
                    depth=stats.depth,
                    oldest_pending_age_s=stats.oldest_pending_age_s,
                    awaiting_replica=stats.awaiting_replica,
                    dead_letters=stats.dead_letters,
                    accept_rate_tx_s=accept_rate,
                    drain_rate_tx_s=drain_rate,
                    estimated_drain_s=drain_estimate_s(stats.depth, drain_rate),
                    memory_used_bytes=memory.used_bytes if memory else None,
                    memory_max_bytes=memory.max_bytes or None if memory else None,
                    memory_used_fraction=_fraction(memory),
                    near_capacity=refusal is not None,
                )
                processor = stats.processor or {"state": "absent"}
        elif rt.redis is not None:
            redis = await self._ping_redis()
        replica = await self._replica(counters.get("main_lsn")) if settings.is_secondary else None
        main = dict(self._health.main) if settings.is_secondary else await self._main_here()
        return SiteStatus(
            site=settings.site_name,
            site_type=settings.site_type.value,
            sampled_at=time.time(),
            main=main,
            replica=replica,
            buffer=buffer,
            processor=processor,
            counters=counters,
            redis=redis,
            degraded=[*self._health.degraded(processor), *degraded],
        )

    async def _buffer_figures(self) -> tuple[dict[str, int], BufferStats]:
        rt = self._runtime
        assert rt.redis is not None
        assert rt.ledger is not None
        # Bounded like the replica's probe: a Redis that hangs must not hang the status.
        async with asyncio.timeout(rt.settings.health_probe_timeout_s):
            async with rt.redis.pipeline(transaction=False) as pipe:
                pipe.hgetall(rt.keys.stats)
                (raw_stats,) = await pipe.execute()
            stats = await rt.ledger.stats()
        return {k: int(v) for k, v in text_map(raw_stats).items()}, stats

    async def _ping_redis(self) -> RedisStatus:
        """At a main site Redis carries only the monitors' events."""
        assert self._runtime.redis is not None
        try:
            async with asyncio.timeout(self._runtime.settings.health_probe_timeout_s):
                await self._runtime.redis.ping()
        except (RedisError, OSError, TimeoutError) as exc:
            return RedisStatus(ok=False, error=first_line(exc, "no answer"))
        return RedisStatus(ok=True)

    def _rates(self, counters: dict[str, int]) -> tuple[float | None, float | None]:
        now = time.monotonic()
        self._history.append((now, counters.get("accepted", 0), counters.get("applied", 0)))
        while len(self._history) > 2 and now - self._history[1][0] > RATE_WINDOW_S:
            self._history.popleft()
        first_at, first_accepted, first_applied = self._history[0]
        elapsed_s = now - first_at
        if elapsed_s < 0.5:
            return None, None
        return (
            round((counters.get("accepted", 0) - first_accepted) / elapsed_s, 2),
            round((counters.get("applied", 0) - first_applied) / elapsed_s, 2),
        )

    async def _replica(self, main_lsn_seen: int | None) -> ReplicaStatus:
        try:
            async with (
                asyncio.timeout(self._runtime.settings.health_probe_timeout_s),
                self._runtime.read_db.connect() as conn,
            ):
                row = (await conn.execute(REPLICA_LAG_SQL)).one()
        except (OSError, TimeoutError, sa.exc.SQLAlchemyError) as exc:
            return ReplicaStatus(ok=False, error=first_line(exc, "no answer"))
        if not row.in_recovery:
            return ReplicaStatus(ok=True, error="reads are served by a primary, not a replica")
        receive_lsn, replay_lsn = row.receive_lsn, row.replay_lsn
        known_main = max(
            (lsn for lsn in (main_lsn_seen, self._health.main_lsn) if lsn is not None),
            default=None,
        )
        apply_lag_bytes = (
            max(0, receive_lsn - replay_lsn) if None not in (receive_lsn, replay_lsn) else None
        )
        return ReplicaStatus(
            ok=True,
            receive_lsn=receive_lsn,
            replay_lsn=replay_lsn,
            receive_lag_bytes=(
                max(0, known_main - receive_lsn)
                if known_main is not None and receive_lsn is not None
                else None
            ),
            apply_lag_bytes=apply_lag_bytes,
            apply_lag_s=_apply_lag_s(apply_lag_bytes, row.since_replayed_commit_s),
            wan_delay_s=_non_negative(row.wan_delay_s),
            since_wal_message_s=_non_negative(row.since_wal_message_s),
        )

    async def _main_here(self) -> dict[str, Any]:
        """At the main site, main is the local database."""
        started = time.perf_counter()
        try:
            async with (
                asyncio.timeout(self._runtime.settings.health_probe_timeout_s),
                self._runtime.read_db.connect() as conn,
            ):
                await conn.execute(sa.text("SELECT 1"))
        except (OSError, TimeoutError, sa.exc.SQLAlchemyError) as exc:
            return {"ok": False, "checked_at": time.time(), "error": str(exc)[:200]}
        return {
            "ok": True,
            "checked_at": time.time(),
            "latency_ms": round((time.perf_counter() - started) * 1000, 1),
        }


def _fraction(memory: MemoryReading | None) -> float | None:
    fraction = memory.used_fraction if memory is not None else None
    return None if fraction is None else round(fraction, 4)


def drain_estimate_s(depth: int, drain_rate_tx_s: float | None) -> float | None:
    """Seconds until the buffer is empty at this drain rate; None while nothing drains."""
    if depth == 0:
        return 0.0
    if not drain_rate_tx_s or drain_rate_tx_s <= 0:
        return None
    return round(depth / drain_rate_tx_s, 1)


def _apply_lag_s(
    apply_lag_bytes: int | None, since_replayed_commit_s: float | None
) -> float | None:
    """The time since the last replayed commit grows on an idle primary too: it is apply lag
    only while received WAL waits to be replayed (the usual receive LSN = replay LSN test)."""
    if apply_lag_bytes is None:
        return None
    if apply_lag_bytes == 0:
        return 0.0
    return _non_negative(since_replayed_commit_s)


def _non_negative(value: float | None) -> float | None:
    return None if value is None else round(max(0.0, float(value)), 3)
