"""Two secondary sites draining onto one main at once (issue 17): the ``drain_sites`` phase of
``bench/run.py`` (``make bench``, ``make bench-sites``).

Two sites join the running bench stack for this phase only, each with its own streaming
replica (its own slot), Redis and WAN link at the bench's delay, so the other phases run beside
one site as before. Both links go down; each site's gateway buffers a backlog through the API
(``BENCH_SITES_BACKLOG`` per site, 10,000 by default); each site's processor starts as its
own process (as deploy/ runs it) and retries against its cut link. Then both links come up at
once and the time until each stream is empty (all applied on main) and nothing awaits its
replica (all visible) is taken. Afterwards, for each site: commit-to-visible of every
transaction (``Bench.commit_to_visible``, as the one-site ``visible`` phase measures it) and
a check that every acknowledged transaction is on main exactly once.
"""

from __future__ import annotations

import asyncio
import contextlib
import math
import re
import time
from typing import Any

import asyncpg
from redis.asyncio import Redis

from bench.report import Goal, Row
from bench.rig import Bench
from bench.sysinfo import CpuMeter, machine
from ccat_api.buffering.keys import SiteKeys
from ccat_api.devstack.sites import SecondarySite
from ccat_api.devstack.stack import Stack
from ccat_api.runtime import make_redis

SITE_NAMES = ("bench-sites-a", "bench-sites-b")
# Not CCAT_*: that prefix is the service's settings (tests/unit/test_config.py holds it so).
SITES_BACKLOG_ENV = "BENCH_SITES_BACKLOG"
PHASE = "drain_sites"
# The processors retry the cut link at most this far apart, so each starts draining within
# about this long of its link coming back (the stack's 2 s would blur a drain of seconds).
PROCESSOR_BACKOFF_MAX_S = 0.25
STARTUP_TIMEOUT_S = 60.0
# What fill() writes: an executed-obs-unit start or a raw data file, one row per answer, keyed
# by the id the gateway gave it (so a second apply could not add a row under another key).
ROWS_ON_MAIN_SQL = """
SELECT (SELECT count(*) FROM executed_obs_units WHERE id = ANY($1::uuid[]))
     + (SELECT count(*) FROM raw_data_files WHERE id = ANY($1::uuid[]))
"""
APPLIED_OF_SITE_SQL = "SELECT count(*) FROM applied_transactions WHERE site = $1"
APPLIED_OF_IDS_SQL = "SELECT count(*) FROM applied_transactions WHERE tx_id = ANY($1::uuid[])"


def add_site(stack: Stack, name: str) -> SecondarySite:
    """A secondary site of the running stack's own (replica, Redis, WAN link), started the
    way ``Stack.up()`` starts each of ``StackConfig.sites``; made here, mid-run, so that only
    this phase has it (two more replicas streaming all along would load main in every phase)."""
    site = SecondarySite(
        name,
        stack.base_dir,
        [node.name for node in stack.main_nodes],
        first=False,
        redis_replicas=stack.config.redis_replicas,
    )
    # Registered before anything starts: settings_overrides(name) and start_processor(name)
    # then use its services, and stack.down() stops whatever of it started if this fails.
    stack.sites[name] = site
    site.start_wan(stack.main_nodes, stack.config.wan_delay_ms)
    site.start_replica(stack.main_db, stack.main_nodes, via_wan=stack.config.replica_via_wan)
    if stack.main_standby is not None:  # as Stack.up(): the replica streams on after a promotion
        stack.main_standby.create_slot(site.replica.slot_name)
    site.start_redis()
    stack.wait_replica_caught_up(site=name)
    return site


def remove_site(stack: Stack, site: SecondarySite) -> None:
    """Stop the site and drop its slot: kept, the slot would hold main's WAL for a replica that
    is gone through every phase after this one."""
    stack.sites.pop(site.name, None)
    stack.processors.pop(site.name, None)
    site.stop()
    slot = site.replica.slot_name
    if not re.fullmatch(r"[a-z0-9_]+", slot):
        raise ValueError(f"not a slot name: {slot!r}")
    deadline = time.monotonic() + 15
    while time.monotonic() < deadline:
        # The walsender may outlive the replica's immediate stop for a moment (slot active).
        left = stack.main_db.psql(
            "SELECT count(pg_drop_replication_slot(slot_name)) FILTER (WHERE NOT active)"  # noqa: S608 (checked above)
            f" || '/' || count(*) FROM pg_replication_slots WHERE slot_name = '{slot}'"
        )
        dropped, found = left.split("/")
        if dropped == found:
            return
        time.sleep(0.2)


async def drain_sites(bench: Bench) -> dict[str, Any]:
    """Both sites buffer with their links down, then drain onto main at once."""
    count = bench.config.sites_transactions
    bench.clock.say(
        f"phase {PHASE}: two sites buffer {count:,} transactions each with their WAN links"
        " down, then both links come up and both processors drain onto main at once"
    )
    results: dict[str, Any] = {"backlog_per_site": count, "sites": {}}
    sites: list[SecondarySite] = []
    redis: dict[str, Redis] = {}
    try:
        for name in SITE_NAMES:
            bench.clock.say(f"  {name}: replica (pg_basebackup), Redis, WAN link")
            sites.append(add_site(bench.stack, name))
            redis[name] = make_redis(bench.stack.site(name).redis.url)
        await _drain(bench, sites, redis, results)
    finally:
        for name in SITE_NAMES:
            bench.stop(name)
        for client in redis.values():
            await client.aclose()
        for site in sites:
            with contextlib.suppress(Exception):  # the stack's down() stops it at the end
                remove_site(bench.stack, site)
    return results


async def _drain(
    bench: Bench, sites: list[SecondarySite], redis: dict[str, Redis], results: dict[str, Any]
) -> None:
    stack = bench.stack
    for site in sites:
        site.wan.down()
    accepted: dict[str, list[dict[str, Any]]] = {name: [] for name in redis}
    await asyncio.gather(
        *(
            bench.fill_backlog(name, bench.config.sites_transactions, accepted=accepted[name])
            for name in redis
        )
    )
    fills = {name: bench._filled.pop(name) for name in redis}
    streams = {
        name: int(await client.xlen(SiteKeys(name).stream)) for name, client in redis.items()
    }
    for name in redis:
        bench.processors[name] = stack.start_processor(
            name, env={"CCAT_PROCESSOR_BACKOFF_MAX_S": str(PROCESSOR_BACKOFF_MAX_S)}
        )
    await _until_leased(bench, redis)
    bench.clock.say("  both processors run and retry against their cut links; links up")
    meter = CpuMeter(_pids(bench, sites))
    load_before = machine()
    meter.start()
    started = time.perf_counter()
    for site in sites:
        site.wan.up()
    timings = await _watch(
        redis, streams, started, max(bench.config.settle_timeout_s, sum(streams.values()) / 500)
    )
    spent = meter.stop()
    # The combined drain lasts until the slower site is through (NaN if one never was).
    ends = [t["applied_s"] for t in timings.values()]
    drained_s = math.nan if any(math.isnan(end) for end in ends) else max(ends)
    for name in redis:
        # Their processors stop here, so the status reads below measure nothing of theirs.
        bench.stop(name)

    for name in redis:
        site_results: dict[str, Any] = {
            "fill": fills[name],
            "accepted": len(accepted[name]),
            "stream_at_start": streams[name],
            **timings[name],
        }
        site_results["applied_per_s"] = _rate(streams[name], timings[name]["applied_s"])
        site_results["exactly_once"] = await _exactly_once(bench, redis[name], name, accepted[name])
        results["sites"][name] = site_results
    visibility = await asyncio.gather(*(_commit_to_visible(bench, n, accepted[n]) for n in redis))
    for name, found in zip(redis, visibility, strict=True):
        results["sites"][name]["visibility"] = found

    total = sum(streams.values())
    results["backlog"] = total
    results["drained_s"] = round(drained_s, 3)
    results["applied_per_s"] = _rate(total, drained_s)
    results["cores_busy"] = (
        {who: round(cpu_s / drained_s, 2) for who, cpu_s in spent.items() if not math.isnan(cpu_s)}
        if drained_s > 0
        else {}
    )
    results["machine_share"] = meter.machine_share
    results["load_avg_1m"] = {
        "before": load_before["load_avg_1m"],
        "after": machine()["load_avg_1m"],
    }
    checks = [s["exactly_once"] for s in results["sites"].values()]
    results["exactly_once"] = {"passed": all(c["passed"] for c in checks), "sites": checks}
    _say_results(bench, results)


def _pids(bench: Bench, sites: list[SecondarySite]) -> dict[str, int]:
    """The processes the drain keeps busy: main's PostgreSQL and each site's processor, WAN
    simulator and Redis (the replicas replay on loopback, outside the drain's path)."""
    found = {k: v for k, v in bench.pids().items() if k == "main_pg"}
    for site in sites:
        processor, wan = bench.processors.get(site.name), site.wan_process
        popens = {
            "processor": processor.process if processor is not None else None,
            "wan": wan.process if wan is not None else None,
            "redis": site.redis.process,
        }
        found.update({f"{role} {site.name}": p.pid for role, p in popens.items() if p is not None})
    return found


async def _until_leased(bench: Bench, redis: dict[str, Redis]) -> None:
    """Until each site's processor holds its lease: started, and retrying main."""
    deadline = time.monotonic() + STARTUP_TIMEOUT_S
    for name, client in redis.items():
        while not await client.exists(SiteKeys(name).lease):
            processor = bench.processors[name]
            if not processor.running() or time.monotonic() > deadline:
                raise RuntimeError(f"processor {name} did not start; see {processor.log_file}")
            await asyncio.sleep(0.05)


async def _watch(
    redis: dict[str, Redis], streams: dict[str, int], started: float, timeout_s: float
) -> dict[str, dict[str, float]]:
    """Seconds from ``started`` until each site's stream first shrinks (its processor is
    through connecting and fencing: a drain of seconds is mostly that), until it is empty (all
    applied on main) and until nothing awaits its replica as well (all visible); NaN if not
    within the timeout."""
    timings = {
        name: {"first_applied_s": math.nan, "applied_s": math.nan, "visible_s": math.nan}
        for name in redis
    }
    deadline = started + timeout_s
    while time.perf_counter() < deadline:
        for name, client in redis.items():
            keys = SiteKeys(name)
            async with client.pipeline(transaction=False) as pipe:
                pipe.xlen(keys.stream)
                pipe.zcard(keys.applied)
                waiting, unseen = await pipe.execute()
            now = round(time.perf_counter() - started, 3)
            if waiting < streams[name] and math.isnan(timings[name]["first_applied_s"]):
                timings[name]["first_applied_s"] = now
            if waiting == 0 and math.isnan(timings[name]["applied_s"]):
                timings[name]["applied_s"] = now
            if waiting == 0 and unseen == 0 and math.isnan(timings[name]["visible_s"]):
                timings[name]["visible_s"] = now
        if all(not math.isnan(t["visible_s"]) for t in timings.values()):
            break
        await asyncio.sleep(0.01)
    return timings


async def _exactly_once(
    bench: Bench, redis: Redis, site: str, accepted: list[dict[str, Any]]
) -> dict[str, Any]:
    """Every acknowledged transaction of ``site`` recorded on main once and its row there;
    nothing more recorded for the site; nothing left in its stream or dead-lettered."""
    tx_ids = [answer["tx_id"] for answer in accepted]
    row_ids = [answer["id"] for answer in accepted]
    conn = await asyncpg.connect(bench.stack.main_db.dsn(), timeout=10)
    try:
        found = {
            "accepted": len(accepted),
            "applied_of_site": int(await conn.fetchval(APPLIED_OF_SITE_SQL, site)),
            "applied_of_accepted": int(await conn.fetchval(APPLIED_OF_IDS_SQL, tx_ids)),
            "rows_on_main": int(await conn.fetchval(ROWS_ON_MAIN_SQL, row_ids)),
        }
    finally:
        await conn.close()
    keys = SiteKeys(site)
    found["left_in_stream"] = int(await redis.xlen(keys.stream))
    found["dead_letters"] = int(await redis.zcard(keys.dead))
    found["passed"] = (
        len(accepted) > 0
        and len(set(tx_ids)) == len(tx_ids)
        and found["applied_of_site"] == found["applied_of_accepted"] == len(accepted)
        and found["rows_on_main"] == len(accepted)
        and found["left_in_stream"] == found["dead_letters"] == 0
    )
    return found


async def _commit_to_visible(
    bench: Bench, site: str, accepted: list[dict[str, Any]]
) -> dict[str, Any]:
    """Commit-to-visible of every transaction the site accepted, from its gateway (restarted
    for this: it was stopped so that the drain had the cores to itself)."""
    url = bench.start_gateway(site, with_processor=False)
    try:
        return await bench.commit_to_visible(url, [answer["tx_id"] for answer in accepted])
    finally:
        bench.stop(site)


def _rate(count: int, seconds: float) -> float:
    return round(count / seconds, 1) if seconds > 0 else math.nan


def _say_results(bench: Bench, results: dict[str, Any]) -> None:
    say = bench.clock.say
    for name, site in results["sites"].items():
        lag = site["visibility"]["applied_to_visible_ms"]
        check = site["exactly_once"]
        say(
            f"  {name}: first on main {site['first_applied_s']:.2f}s after the links came up,"
            f" all {site['stream_at_start']:,} after {site['applied_s']:.2f}s"
            f" ({site['applied_per_s']} tx/s), all visible after {site['visible_s']:.2f}s;"
            f" commit-to-visible p50 {lag['p50']} ms, p99 {lag['p99']} ms"
        )
        say(
            f"    exactly once: {'PASS' if check['passed'] else 'FAIL'} ({check['accepted']:,}"
            f" accepted, {check['applied_of_site']:,} recorded for the site on main,"
            f" {check['rows_on_main']:,} rows; {check['left_in_stream']} left in the stream,"
            f" {check['dead_letters']} dead letters)"
        )
    share = results["machine_share"]
    say(
        f"  combined: {results['backlog']:,} tx in {results['drained_s']:.2f}s"
        f" ({results['applied_per_s']} tx/s); cores busy {results['cores_busy']};"
        f" machine {100 * share.get('idle', 0):.0f}% idle; load average"
        f" {results['load_avg_1m']['before']} -> {results['load_avg_1m']['after']}"
    )


def sites_rows(
    phases: dict[str, Any], single_per_s: float, drain_goal: Goal, visible_goal: Goal
) -> list[Row]:
    """The phase's rows: the combined rate against the one-site target, its ratio to the
    one-site drain of the same run (when that ran), then each site's rate and lags."""
    found = phases.get(PHASE)
    if not isinstance(found, dict):
        return []
    if "error" in found:
        return [Row(f"{PHASE}_applied_per_s", "two sites draining at once", math.nan, "tx/s",
                    drain_goal, note=str(found["error"]))]  # fmt: skip
    combined = float(found.get("applied_per_s", math.nan))
    rows = [
        Row(f"{PHASE}_applied_per_s",
            f"two sites draining at once, {found.get('backlog', 0):,} tx: combined rate",
            combined, "tx/s", drain_goal),
    ]  # fmt: skip
    if not math.isnan(single_per_s):
        rows.append(Row(f"{PHASE}_vs_single", "  combined / the one-site drain of this run",
                        combined / single_per_s, "x"))  # fmt: skip
    for n, (name, site) in enumerate(found.get("sites", {}).items()):
        key = f"{PHASE}_{'ab'[n] if n < 2 else n}"
        lag = site.get("visibility", {}).get("applied_to_visible_ms", {})
        rate = float(site.get("applied_per_s", math.nan))
        rows += [
            Row(f"{key}_applied_per_s", f"  {name}: drain rate alongside the other", rate, "tx/s"),
            Row(f"{key}_first_applied_s", f"  {name}: first transactions on main after (links up)",
                float(site.get("first_applied_s", math.nan)), "s"),
            Row(f"{key}_visible_p50_ms", f"  {name}: commit-to-visible p50",
                float(lag.get("p50", math.nan)), "ms"),
            Row(f"{key}_visible_p99_ms", f"  {name}: commit-to-visible p99",
                float(lag.get("p99", math.nan)), "ms", visible_goal),
        ]  # fmt: skip
        if not math.isnan(single_per_s):
            rows.append(Row(f"{key}_vs_single", f"  {name}: its rate / the one-site drain",
                            rate / single_per_s, "x"))  # fmt: skip
    checks = found.get("exactly_once", {}).get("sites", [])
    passed = sum(1 for check in checks if check.get("passed"))
    rows.append(Row(f"{PHASE}_exactly_once",
                    "  sites whose transactions are all on main exactly once (share)",
                    passed / len(checks) if checks else math.nan, "", Goal(">=", 1.0)))  # fmt: skip
    return rows


def exactly_once_failure(phases: dict[str, Any]) -> str | None:
    """Why the two-site drain's exactly-once check did not pass; None if it passed or the
    phase was not run."""
    found = phases.get(PHASE)
    if not isinstance(found, dict):
        return None
    if "error" in found:
        return f"{PHASE} failed before its check: {found['error']}"
    check = found.get("exactly_once", {})
    if check.get("passed"):
        return None
    return f"{PHASE}: not every transaction is on main exactly once: {check.get('sites')}"
