"""The drain phases of ``bench.run``: a buffered backlog drained by the production worker in
this process (``drain``, ``drain_100k``, ``drain_bandwidth`` through a capped WAN), and
buffered writes while the site's processor drains a backlog (``drain_writes``)."""

from __future__ import annotations

import asyncio
import contextlib
import cProfile
import math
import time
from typing import Any

from bench.load import open_loop
from bench.measures import BatchLog, brief, cpu_line, cpu_report, wan_bytes
from bench.rig import Bench
from bench.run_config import (
    SITE_DRAIN,
    SITE_DRAIN_100K,
    SITE_DRAIN_BANDWIDTH,
    SITE_DRAIN_WRITES,
)
from bench.sysinfo import CpuMeter
from ccat_api.buffering.keys import SiteKeys
from ccat_api.config import Settings
from ccat_api.runtime import build_worker, make_redis


async def drain(bench: Bench) -> dict[str, Any]:
    return await drain_backlog(bench, SITE_DRAIN, bench.config.drain_transactions)


async def drain_100k(bench: Bench) -> dict[str, Any]:
    return await drain_backlog(bench, SITE_DRAIN_100K, bench.config.drain_large_transactions)


async def drain_bandwidth(bench: Bench) -> dict[str, Any]:
    return await drain_backlog(
        bench,
        SITE_DRAIN_BANDWIDTH,
        bench.config.drain_transactions,
        bandwidth_mbit=bench.config.drain_bandwidth_mbit,
    )


async def drain_backlog(
    bench: Bench, site: str, count: int, *, bandwidth_mbit: float | None = None
) -> dict[str, Any]:
    """Buffer ``count`` transactions with no processor, then run the production worker
    (``SiteWorker.run``: processor and LSN tracker) in this process until the stream is
    empty (all applied on main) and nothing awaits the replica (all visible)."""
    cfg = bench.config
    link = f", WAN capped at {bandwidth_mbit:g} Mbit/s each way" if bandwidth_mbit else ""
    bench.clock.say(
        f"phase {site}: backlog drain, {count:,} transactions buffered with no processor{link}"
    )
    keys = SiteKeys(site)
    results: dict[str, Any] = {"site": site, "bandwidth_mbit": bandwidth_mbit}
    await bench.fill_backlog(site, count)
    results["fill"] = bench._filled.pop(site)
    backlog = int(await bench.redis.xlen(keys.stream))
    results["backlog"] = backlog
    overrides = {**bench.stack.settings_overrides(site), "run_processor": False}
    if cfg.drain_batch_size:
        overrides["processor_batch_size"] = cfg.drain_batch_size
    settings = Settings.model_validate(overrides)
    results["batch_size"] = settings.processor_batch_size
    worker_redis = make_redis(settings.redis_url)
    worker = build_worker(settings, worker_redis)
    stop = asyncio.Event()
    applied_s = visible_s = float("nan")
    if bandwidth_mbit:
        bench.stack.wan.set_bandwidth(bandwidth_mbit)
    wan_before = wan_bytes(bench.stack.wan.state())
    meter = CpuMeter(bench.pids())
    batches = BatchLog()
    profiler = cProfile.Profile() if cfg.profile_drain else None
    meter.start()
    started = time.perf_counter()
    batches.started = started
    if profiler is not None:
        profiler.enable()
    task = asyncio.create_task(worker.run(stop))
    try:
        # A drain slower than 500 tx/s is a finding, not a hang.
        deadline = started + max(cfg.settle_timeout_s, count / 500)
        while time.perf_counter() < deadline and not task.done():
            async with bench.redis.pipeline(transaction=False) as pipe:
                pipe.xlen(keys.stream)
                pipe.zcard(keys.applied)
                waiting, unseen = await pipe.execute()
            now = time.perf_counter() - started
            if waiting == 0 and math.isnan(applied_s):
                applied_s = now
            if waiting == 0 and unseen == 0:
                visible_s = now
                break
            await asyncio.sleep(0.01)
    finally:
        stop.set()
        with contextlib.suppress(Exception):
            await asyncio.wait_for(task, 30)
        await worker_redis.aclose()
        batches.detach()
        wan_after = wan_bytes(bench.stack.wan.state())
        if bandwidth_mbit:
            bench.stack.wan.set_bandwidth(None)
        if profiler is not None and cfg.profile_drain is not None:
            profiler.disable()
            cfg.profile_drain.parent.mkdir(parents=True, exist_ok=True)
            profiler.dump_stats(cfg.profile_drain)
            bench.clock.say(f"  drain worker profile written to {cfg.profile_drain}")
    results["cpu"] = cpu_report(meter.stop(), backlog, applied_s)
    results["cpu"]["machine_share"] = meter.machine_share
    results["batches"] = batches.summary()
    if task.done() and not task.cancelled() and task.exception() is not None:
        bench.clock.say(f"  WARNING: the worker failed: {task.exception()!r}")
    results["applied_s"] = round(applied_s, 3)
    results["visible_s"] = round(visible_s, 3)
    results["applied_per_s"] = round(backlog / applied_s, 1) if applied_s > 0 else math.nan
    results["visible_per_s"] = round(backlog / visible_s, 1) if visible_s > 0 else math.nan
    up, down = (after - before for after, before in zip(wan_after, wan_before, strict=True))
    results["wan_bytes_up_per_tx"] = round(up / max(1, backlog), 1)
    results["wan_bytes_down_per_tx"] = round(down / max(1, backlog), 1)
    if bandwidth_mbit and applied_s > 0:
        # The share of the capped link's capacity the drain used while it ran: near 1, the
        # drain was bound by bytes; far below, by round trips or CPU.
        results["wan_utilisation"] = round(up * 8 / (bandwidth_mbit * 1e6 * applied_s), 3)
    results["dead_letters"] = int(await bench.redis.zcard(keys.dead))
    results["applied_on_main"] = await bench.applied_on_main(site)
    first = results["batches"]
    bench.clock.say(f"  {cpu_line(results['cpu'], 'tx')}")
    bench.clock.say(
        f"  replay batches: {first['count']}, mean {first['mean_size']} tx,"
        f" {first['apply_ms_total']} ms in the replay call on main (WAN round trips"
        f" included); the first batch left {first['first_sent_s']}s after the worker"
        f" started (connect, fence, schema check, reports); WAN bytes per tx"
        f" {results['wan_bytes_up_per_tx']:.0f} up, {results['wan_bytes_down_per_tx']:.0f}"
        " down"
    )
    bench.clock.say(
        f"  all applied on main in {applied_s:.2f}s ({results['applied_per_s']} tx/s),"
        f" all visible in {visible_s:.2f}s; {results['dead_letters']} dead letters,"
        f" {results['applied_on_main']:,} recorded on main"
    )
    return results


async def drain_writes(bench: Bench) -> dict[str, Any]:
    """Buffered writes at 200 req/s while the site's processor (its own process, as
    deploy/ runs it) drains a 100,000 backlog on the same cores: their latency."""
    cfg = bench.config
    site = SITE_DRAIN_WRITES
    keys = SiteKeys(site)
    bench.clock.say(
        f"phase {site}: buffered writes at {cfg.rate_per_s:.0f} req/s while a"
        f" {cfg.drain_large_transactions:,} backlog drains"
    )
    url = await bench.fill_backlog(site, cfg.drain_large_transactions, keep_gateway=True)
    results: dict[str, Any] = {"site": site, "fill": bench._filled.pop(site)}
    try:
        target = bench.target(url)
        backlog = int(await bench.redis.xlen(keys.stream))
        results["backlog"] = backlog
        drained = asyncio.Event()
        bench.processors[site] = bench.stack.start_processor(site)
        started = time.perf_counter()
        load = asyncio.create_task(
            bench.measured(
                site,
                open_loop(
                    target,
                    rate_per_s=cfg.rate_per_s,
                    duration_s=max(cfg.settle_timeout_s, backlog / 500),
                    client_kind=cfg.client,
                    until=drained,
                ),
            )
        )
        while time.perf_counter() - started < max(cfg.settle_timeout_s, backlog / 500):
            if await bench.applied_on_main(site) >= backlog:
                break
            await asyncio.sleep(0.25)
        drained_s = time.perf_counter() - started
        drained.set()
        run, results["load"] = await load
    finally:
        bench.stop(site)
    results["drained_s"] = round(drained_s, 2)
    results["drained_per_s"] = round(backlog / drained_s, 1)
    bench.clock.say(f"  open loop {cfg.rate_per_s:.0f} req/s during the drain: {brief(run)}")
    bench.clock.say(f"    {cpu_line(results['load']['cpu'])}")
    bench.clock.say(
        f"  the backlog of {backlog:,} was on main after {drained_s:.1f}s"
        f" ({results['drained_per_s']} tx/s with the writes alongside)"
    )
    return results
