"""What main and the site hold once the campaign has drained: the markers of the run's
records and the site's applied_transactions on main; the site's Redis (dead letters, what it
still holds, the state of each acknowledged transaction); every life cycle read back through
a gateway after the drain (each record present exactly once)."""

from __future__ import annotations

import asyncio
import time

import asyncpg
import httpx

from ccat_api.buffering.keys import SiteKeys
from ccat_api.buffering.ledger import TransactionLedger
from ccat_api.devstack.chaos.checker import AppliedTx, MainState, SiteState
from ccat_api.devstack.chaos.history import History, Probe, Write
from ccat_api.devstack.chaos.workload import judge_unit
from ccat_api.devstack.postgres import PostgresCluster
from ccat_api.devstack.stack import Stack
from ccat_api.runtime import make_redis

READ_ATTEMPTS = 5
# Each kind's marker, as main holds it: (table, marker expression) over the run's records.
MARKERS = (
    ("executed_obs_units", "conditions->>'chaos_start'"),
    ("executed_obs_units", "conditions->>'chaos_finish'"),
    ("raw_data_files", "name"),
    ("raw_data_packages", "name"),
)


async def read_main(dsn: str, site: str, run_id: str) -> MainState:
    conn = await asyncpg.connect(dsn, timeout=10)
    try:
        markers: dict[str, int] = {}
        for table, marker in MARKERS:
            rows = await conn.fetch(
                f"SELECT {marker} AS marker, count(*) AS n FROM {table}"  # noqa: S608
                f" WHERE {marker} LIKE $1 GROUP BY 1",
                f"{run_id}-%",
            )
            markers.update({row["marker"]: int(row["n"]) for row in rows})
        applied = await conn.fetch(
            "SELECT tx_id::text, seq, extract(epoch FROM applied_at)::float8 AS at"
            " FROM applied_transactions WHERE site = $1",
            site,
        )
    finally:
        await conn.close()
    return MainState(markers, [AppliedTx(r["tx_id"], r["seq"], r["at"]) for r in applied])


async def read_site(redis_url: str, site: str, history: History) -> SiteState:
    keys = SiteKeys(site)
    redis = make_redis(redis_url)
    try:
        acknowledged = [w.tx_id for w in history.writes if w.tx_id is not None]
        ledger = TransactionLedger(redis, keys, status_ttl_s=0)
        statuses = await ledger.many(acknowledged)
        return SiteState(
            dead_letters=int(await redis.zcard(keys.dead)),
            unsettled=int(await redis.zcard(keys.unsettled)),
            awaiting_replica=int(await redis.zcard(keys.applied)),
            not_visible=[
                tx_id
                for tx_id, status in zip(acknowledged, statuses, strict=True)
                if status is None or status.state != "visible"
            ],
        )
    finally:
        await redis.aclose()


async def drained(redis_url: str, site: str) -> bool:
    """Nothing left to send to main and nothing waiting for the replica."""
    keys = SiteKeys(site)
    redis = make_redis(redis_url)
    try:
        return not (await redis.zcard(keys.unsettled) or await redis.zcard(keys.applied))
    finally:
        await redis.aclose()


async def wait_drained(redis_url: str, site: str, timeout_s: float) -> bool:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if await drained(redis_url, site):
            return True
        await asyncio.sleep(1.0)
    return await drained(redis_url, site)


async def read_back(
    urls: list[str], token: str, history: History, concurrency: int = 8
) -> list[Probe]:
    """Each acknowledged unit's details through a gateway: the unit, every acknowledged file
    and package exactly once, the finish's status."""
    units: dict[str, list[Write]] = {}
    for write in history.writes:
        units.setdefault(write.unit, []).append(write)
    gate = asyncio.Semaphore(concurrency)
    probes: list[Probe] = []
    async with httpx.AsyncClient(headers={"Authorization": f"Bearer {token}"}, timeout=30) as http:

        async def one(index: int, writes: list[Write]) -> None:
            async with gate:
                rotated = urls[index % len(urls) :] + urls[: index % len(urls)]
                probes.extend(await _read_unit(http, rotated, writes))

        await asyncio.gather(
            *(one(i, ws) for i, ws in enumerate(units.values()) if ws[0].record_id)
        )
    return probes


async def _read_unit(http: httpx.AsyncClient, urls: list[str], writes: list[Write]) -> list[Probe]:
    """After the drain every gateway is up: an attempt without an answer (a keep-alive
    connection the server closed as it was reused) is tried again on the next one."""
    path = f"/executed_obs_units/{writes[0].record_id}/details"
    failure = ""
    for attempt in range(READ_ATTEMPTS):
        try:
            answer = await http.get(urls[attempt % len(urls)] + path)
        except httpx.TransportError as exc:
            failure = type(exc).__name__
        else:
            if answer.status_code < 500:
                return judge_unit(answer, writes, "after the drain")
            failure = str(answer.status_code)
        await asyncio.sleep(0.5)
    return [Probe(writes[0].key, "start", "unavailable", f"after the drain: {failure}")]


LOG_LINES = 12


def diagnose(stack: Stack) -> list[str]:
    """For a failed run, before the stack goes: where each PostgreSQL node stands, and the
    replica's last warnings and errors (a replica that cannot follow main says why there)."""
    nodes: list[PostgresCluster] = [stack.main_db, stack.replica]
    standby: PostgresCluster | None = getattr(stack, "main_standby", None)
    if standby is not None:
        nodes.insert(1, standby)
    lines = []
    for node in nodes:
        try:
            state = node.psql(
                "SELECT pg_is_in_recovery(), timeline_id, CASE WHEN pg_is_in_recovery()"
                " THEN pg_last_wal_replay_lsn() ELSE pg_current_wal_flush_lsn() END"
                " FROM pg_control_checkpoint()"
            )
        except Exception as exc:  # a node that is down is itself the finding
            state = f"no answer: {exc!r}"[:200]
        lines.append(f"{node.name}: (in recovery, checkpoint timeline, lsn) {state.strip()}")
    if stack.replica.log_file.exists():
        logged = stack.replica.log_file.read_text(errors="replace").splitlines()
        lines += [line[:300] for line in logged[-LOG_LINES:]]
    return lines
