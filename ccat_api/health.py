"""What /health reports: can this site take writes, and how far behind is everything.

Main's reachability at a secondary site is probed in the background (it crosses the WAN and
may hang for the probe timeout); everything local is checked on request.

The answer is 503 when the site cannot take writes (Redis away, or found not durable), and
200 otherwise. ``status`` is ``degraded`` on a 503, and also on a 200 that needs a look:
``degraded`` lists why (a loop of the site worker crashed recently and was restarted).
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Mapping
from typing import Any

import asyncpg
import sqlalchemy as sa

from ccat_api.buffering.tracker import REPLAY_LSN_SQL
from ccat_api.errors import first_line
from ccat_api.runtime import Runtime, plain_dsn
from ccat_api.supervisor import DEGRADED_FOR_S, Faults, crash_from_heartbeat

REPLICA_SQL = sa.text(
    """
    SELECT pg_is_in_recovery() AS in_recovery,
           (pg_last_wal_receive_lsn() - pg_last_wal_replay_lsn())::bigint AS apply_lag_bytes,
           extract(epoch FROM now() - pg_last_xact_replay_timestamp())::float
             AS since_last_replayed_commit_s
    """
)
MAIN_PROBE_INTERVAL_S = 5.0
# Main's flushed WAL position (the same query the tracker asks the replica), so the replica's
# receive lag can be told apart from its apply lag.
MAIN_LSN_SQL = REPLAY_LSN_SQL


class HealthProbe:
    def __init__(self, runtime: Runtime) -> None:
        self._runtime = runtime
        self._timeout_s = runtime.settings.health_probe_timeout_s
        self.main: dict[str, Any] = {"ok": None, "checked_at": None, "error": "not probed yet"}
        self.main_lsn: int | None = None
        # Kept open between probes: connecting costs several milliseconds of this process's
        # CPU every few seconds, which would show up in the write path's tail latency.
        self._main_conn: asyncpg.Connection | None = None
        # Crashes of this process's supervised loops, and of the site worker's when it runs
        # here (``watch``); a worker elsewhere reports its own through its heartbeat.
        self.faults = Faults()
        self._watched: list[Faults] = [self.faults]

    def watch(self, faults: Faults) -> None:
        self._watched.append(faults)

    def degraded(self, processor: Mapping[str, str] | None) -> list[str]:
        """Why the site needs an operator's look now; ``processor`` is its heartbeat."""
        reasons: list[str] = []
        buffer = self._runtime.buffer
        if buffer is not None and buffer.refusal is not None:
            reasons.append(f"writes are refused: {buffer.refusal}")
        heartbeat = processor or {}
        if heartbeat.get("state") == "held":
            reasons.append(
                f"replay held ({heartbeat.get('hold_code', 'schema')}):"
                f" {heartbeat.get('hold_reason', 'no reason given')}"
            )
        now = time.time()
        crashes = [faults.last for faults in self._watched if faults.last is not None]
        reported = crash_from_heartbeat(dict(processor or {}))
        if reported is not None:
            crashes.append(reported)
        recent = [crash for crash in crashes if now - crash.at < DEGRADED_FOR_S]
        if recent:
            reasons.append(max(recent, key=lambda crash: crash.at).describe(now))
        return reasons

    async def probe_main_forever(self, stop: asyncio.Event) -> None:
        while not stop.is_set():
            await self.probe_main()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), timeout=MAIN_PROBE_INTERVAL_S)

    async def probe_main(self) -> None:
        started = time.perf_counter()
        try:
            if self._main_conn is None or self._main_conn.is_closed():
                self._main_conn = await asyncpg.connect(
                    plain_dsn(self._runtime.settings.main_db_url), timeout=self._timeout_s
                )
            lsn = await asyncio.wait_for(self._main_conn.fetchval(MAIN_LSN_SQL), self._timeout_s)
            self.main = {
                "ok": True,
                "checked_at": time.time(),
                "latency_ms": round((time.perf_counter() - started) * 1000, 1),
            }
            self.main_lsn = int(lsn) if lsn is not None else self.main_lsn
        except (OSError, TimeoutError, asyncpg.PostgresError, asyncpg.InterfaceError) as exc:
            await self.close()
            now = time.time()
            self.main = {
                "ok": False,
                "checked_at": now,
                "error": str(exc) or type(exc).__name__,
                # The first failed probe of this run of failures: `ccat-api status` and the
                # console say how long main has been away, on the gateway's own clock.
                "unreachable_since": self.main.get("unreachable_since") or now,
            }

    async def close(self) -> None:
        conn, self._main_conn = self._main_conn, None
        if conn is not None and not conn.is_closed():
            conn.terminate()

    async def report(self) -> tuple[bool, dict[str, Any]]:
        rt = self._runtime
        checks: dict[str, Any] = {"site": rt.settings.site_name, "site_type": rt.settings.site_type}
        database = await self._check_read_db()
        if rt.settings.is_secondary:
            checks["replica"] = database
            checks["main"] = self.main
            checks["redis"] = await self._check_redis()
            if rt.buffer is not None and rt.buffer.refusal is not None:
                checks["redis"]["writes_refused"] = rt.buffer.refusal
            if rt.ledger is not None and checks["redis"]["ok"]:
                stats = await rt.ledger.stats()
                checks["buffer"] = {
                    "depth": stats.depth,
                    "oldest_pending_age_s": stats.oldest_pending_age_s,
                    "awaiting_replica": stats.awaiting_replica,
                    "dead_letters": stats.dead_letters,
                }
                checks["processor"] = stats.processor or {"state": "absent"}
            # Writes are accepted as long as the buffer takes them; main may be far away.
            ok = bool(checks["redis"]["ok"]) and "writes_refused" not in checks["redis"]
        else:
            checks["main"] = database
            ok = bool(database["ok"])
        degraded = self.degraded(checks.get("processor"))
        if degraded:
            checks["degraded"] = degraded
        checks["status"] = "ok" if ok and not degraded else "degraded"
        return ok, checks

    async def _check_read_db(self) -> dict[str, Any]:
        try:
            async with asyncio.timeout(self._timeout_s), self._runtime.read_db.connect() as conn:
                row = (await conn.execute(REPLICA_SQL)).one()
        except (OSError, TimeoutError, sa.exc.SQLAlchemyError) as exc:
            return {"ok": False, "error": first_line(exc)}
        result: dict[str, Any] = {"ok": True, "in_recovery": row.in_recovery}
        if row.in_recovery:
            result["apply_lag_bytes"] = row.apply_lag_bytes
            result["since_last_replayed_commit_s"] = row.since_last_replayed_commit_s
        return result

    async def _check_redis(self) -> dict[str, Any]:
        redis = self._runtime.redis
        if redis is None:
            return {"ok": False, "error": "no redis configured"}
        try:
            async with asyncio.timeout(self._timeout_s):
                await redis.ping()
        except Exception as exc:
            return {"ok": False, "error": str(exc) or type(exc).__name__}
        return {"ok": True}
