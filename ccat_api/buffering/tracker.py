"""LSN tracking: applied -> visible, and overlay cleanup, once the local replica has caught up.

One poll serves every pending transaction: read the replica's replay position once, then let
visible.lua settle all transactions whose commit LSN it has passed. The tracker knows the
oldest commit LSN still waiting (the processor tells it about each batch; Redis tells it
after a restart), so the replica is polled only while something waits, and the settling
script runs only when the replica has passed that LSN. Overlay records are dropped only here
(or when a transaction fails), so a lagging or stopped replica simply keeps them and reads
stay complete.
"""

from __future__ import annotations

import asyncio
import time

import asyncpg
from redis.asyncio import Redis

from ccat_api.buffering.keys import VISIBLE_BUCKET_MS, SiteKeys
from ccat_api.buffering.scripts import Scripts
from ccat_api.failpoints import failpoint

# On a primary (a site without a replica, or tests pointing reads at main) there is no replay
# position; everything flushed is what reads see.
REPLAY_LSN_SQL = """
SELECT (CASE WHEN pg_is_in_recovery() THEN pg_last_wal_replay_lsn()
             ELSE pg_current_wal_flush_lsn() END - '0/0'::pg_lsn)::bigint
"""
# Transactions per visible.lua call: a call holds Redis (and the gateway's accepts) while it
# drops their overlay layers, so a drained batch of thousands is settled in steps. Redis's
# slow log during a drain of 100,000 beside 200 writes/s showed calls of 500 holding it for
# 20 ms (p50; 64 ms at most), a write's whole latency budget, and calls of 100 for 6 ms.
SETTLE_LIMIT = 50
RECENT_CAP = 1_000_000
# Longer than any accept takes between its replica check and its Lua call.
UNIQUE_CLAIM_GRACE_MS = 60_000


class ReplicaUnavailable(Exception):
    pass


class LsnTracker:
    def __init__(
        self,
        redis: Redis,
        keys: SiteKeys,
        replica_dsn: str,
        *,
        poll_interval_s: float,
        timeout_s: float,
        status_ttl_s: int,
        confirms_kept: bool = False,
    ) -> None:
        # Main has standbys (main_standby_names): a transaction kept for a failover of main
        # becomes visible only once the replica shows its applied_transactions row.
        self._confirms_kept = confirms_kept
        self._redis = redis
        self._keys = keys
        self._scripts = Scripts(redis)
        self._dsn = replica_dsn
        self.poll_interval_s = poll_interval_s
        self._timeout_s = timeout_s
        self._status_ttl_s = status_ttl_s
        self._conn: asyncpg.Connection | None = None
        self.last_replay_lsn: int | None = None
        # The oldest commit LSN not yet visible, or None: nothing known to wait (then Redis
        # is asked, since another process may have applied something).
        self._oldest_waiting: int | None = None
        self.wakeup = asyncio.Event()

    @property
    def waiting(self) -> bool:
        return self._oldest_waiting is not None

    def note_applied(self, lsn: int) -> None:
        """The processor committed a batch at ``lsn``: start watching for it."""
        if self._oldest_waiting is None or lsn < self._oldest_waiting:
            self._oldest_waiting = lsn
        self.wakeup.set()

    async def replay_lsn(self) -> int:
        try:
            if self._conn is None or self._conn.is_closed():
                self._conn = await asyncpg.connect(
                    self._dsn,
                    timeout=self._timeout_s,
                    server_settings={"application_name": f"ccat-tracker-{self._keys.site}"},
                )
            value = await asyncio.wait_for(self._conn.fetchval(REPLAY_LSN_SQL), self._timeout_s)
        except (asyncpg.PostgresError, asyncpg.InterfaceError, OSError, TimeoutError) as exc:
            await self.close()
            raise ReplicaUnavailable(f"local replica unavailable: {exc}") from exc
        if value is None:
            raise ReplicaUnavailable("local replica reports no replay position")
        self.last_replay_lsn = int(value)
        return self.last_replay_lsn

    async def run_once(self) -> list[str]:
        """Settle every applied transaction the replica has replayed; returns their ids."""
        failpoint("tracker_pass")
        if self._oldest_waiting is None:
            oldest = await self._redis.zrange(self._keys.applied, 0, 0, withscores=True)
            if not oldest:
                return []
            self._oldest_waiting = int(oldest[0][1])
        lsn = await self.replay_lsn()
        if lsn < self._oldest_waiting:
            return []
        if self._confirms_kept:
            await self._defer_unconfirmed(lsn)
        settled: list[str] = []
        while True:
            ready, oldest_left = await self._scripts.visible(
                keys=[
                    self._keys.applied,
                    self._keys.recent,
                    self._keys.stats,
                    self._keys.unsettled,
                    self._keys.visible,
                    self._keys.visible_count,
                ],
                args=[
                    self._keys.events,
                    *self._keys.overlay_families,
                    self._keys.tx_prefix,
                    lsn,
                    int(time.time() * 1000),
                    self._status_ttl_s,
                    SETTLE_LIMIT,
                    RECENT_CAP,
                    UNIQUE_CLAIM_GRACE_MS,
                    self._keys.visible_prefix,
                    VISIBLE_BUCKET_MS,
                ],
            )
            settled += [r.decode() for r in ready]
            if len(ready) < SETTLE_LIMIT:
                self._oldest_waiting = int(oldest_left) if oldest_left else None
                return settled

    async def _defer_unconfirmed(self, lsn: int) -> None:
        """Kept transactions (``horizon.py``) whose commit LSN the replica has passed but whose
        row it does not show: after a failover of main the replica follows a new timeline,
        on which an old LSN means nothing, and the transaction waits to be applied again.
        Each is moved just past the replay position, so it is looked at again next pass,
        until the processor re-applies it (at its new LSN) and the replica shows it."""
        raw = await self._redis.zrangebyscore(
            self._keys.applied, "-inf", lsn, start=0, num=SETTLE_LIMIT
        )
        due = [r.decode() if isinstance(r, bytes) else str(r) for r in raw]
        if not due:
            return
        kept = await self._redis.zmscore(self._keys.undurable, due)
        candidates = [tx for tx, score in zip(due, kept, strict=True) if score is not None]
        if not candidates:
            return
        assert self._conn is not None
        shown = {
            str(row[0])
            for row in await asyncio.wait_for(
                self._conn.fetch(
                    "SELECT tx_id::text FROM applied_transactions WHERE tx_id = ANY($1::uuid[])",
                    candidates,
                ),
                self._timeout_s,
            )
        }
        unconfirmed = [tx for tx in candidates if tx not in shown]
        if unconfirmed:
            await self._redis.zadd(self._keys.applied, dict.fromkeys(unconfirmed, lsn + 1), xx=True)

    async def close(self) -> None:
        conn, self._conn = self._conn, None
        if conn is not None and not conn.is_closed():
            conn.terminate()
