"""Benchmarks through the WAN simulator at 200 ms round trip: ``python -m bench.run``.

One run starts one local stack (main PostgreSQL, a streaming replica on loopback, Redis with
AOF ``appendfsync always``, the WAN simulator with 100 ms each way between the secondary site
and main) and measures, each phase against its own gateway process and site name so their
buffers never mix:

1. buffered write: ``POST /executed_obs_units/start`` at a secondary gateway while the site's
   processor runs as its own process, as deploy/ runs it (replay competes for the cores).
   Open loop at 200 req/s for 15 s (latency from each request's scheduled start), then
   closed loop, 32 clients for 10 s.
2. floor: ``bench/bare_app.py`` (one ``XADD`` to the same Redis, same uvicorn options), the
   same open and closed loops. Ratio of buffered to bare closed-loop throughput.
3. direct-to-main write: a MAIN-type gateway whose ``main_db_url`` crosses the WAN, as a
   secondary site without buffering would pay. Open loop at 10 req/s (below what its
   10-connection pool can serve at three round trips a write), closed loop with 10 clients.
4. commit-to-visible: a few hundred buffered writes at 30 req/s with the processor running;
   ``visible_at - applied_at`` of each, from ``GET /transactions/{tx_id}``.
5. backlog drain: with no processor, 20,000 transactions are buffered through the HTTP API
   (pairs of an executed-obs-unit start and a raw data file in it, 32 clients); then a worker
   (the production ``SiteWorker.run``: processor and LSN tracker) starts in this process and
   the time until the stream is empty (all applied on main) and until all are visible is taken.
6. the same drain with 100,000 transactions (``drain_100k``), and with 20,000 through a WAN
   capped at 20 Mbit/s each way (``drain_bandwidth``): WAN bytes per transaction, and how much
   of the capped link's capacity the drain used (bound by bytes, not round trips).
7. buffered writes at 200 req/s while the site's processor (its own process) drains a 100,000
   backlog on the same cores (``drain_writes``): the writes' latency.
8. two secondary sites, each with its own replica, Redis and WAN link, buffer a backlog each
   while their links are down, then both links come up and both processors drain onto the
   same main at once (``drain_sites``, ``bench/sites.py``): per-site and combined drain rate,
   commit-to-visible per site, and a check that every transaction is on main exactly once.

It prints figures and, next to each target, "meets" or "misses"; it never fails on timings
(shared machines are noisy), only on a failed correctness check (exit status 1). The
figures also go to ``bench/results/latest.json`` (with the CPU each process spent per
request, and the machine's idle/iowait/steal share during each load), and the stack's process
logs to ``bench/results/logs/``.
``--quick`` runs every phase briefly (a smoke test of the benchmark itself).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import cProfile
import json
import logging
import math
import os
import shutil
import sys
import time
from collections.abc import Awaitable, Callable, Coroutine
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any, TypeVar

import asyncpg
import orjson
from redis.asyncio import Redis

from bench.load import (
    ClientError,
    LoadResult,
    RawClient,
    Target,
    closed_loop,
    open_loop,
    percentile,
)
from bench.report import Goal, Row, table
from bench.sites import SITES_BACKLOG_ENV, drain_sites, exactly_once_failure, sites_rows
from bench.sysinfo import CpuMeter, fsync_probe, machine
from ccat_api.auth.tokens import issue_service_token
from ccat_api.buffering.keys import SiteKeys
from ccat_api.config import Settings
from ccat_api.db.engines import PrimaryDatabase, make_engine
from ccat_api.db.models import Role
from ccat_api.devstack.stack import ManagedProcess, Stack, StackConfig
from ccat_api.devstack.system import free_port, wait_port
from ccat_api.runtime import build_worker, make_redis

T = TypeVar("T")

REPO_ROOT = Path(__file__).resolve().parent.parent
RESULTS_FILE = REPO_ROOT / "bench" / "results" / "latest.json"
START_PATH = "/executed_obs_units/start"
START_BODY = orjson.dumps({"obs_unit_id": 1})
FILES_PATH = "/raw_data_files"
BARE_STREAM = "bench:bare:stream"
PROCESSOR_LOGGER = "ccat_api.buffering.processor"

SITE_BUFFERED = "bench-buffered"
SITE_VISIBLE = "bench-visible"
SITE_DRAIN = "bench-drain"
SITE_DRAIN_100K = "bench-drain-100k"
SITE_DRAIN_BANDWIDTH = "bench-drain-bandwidth"
SITE_DRAIN_WRITES = "bench-drain-writes"
SITE_DIRECT = "main"  # a MAIN-type gateway: the name is recorded with its writes on main
BARE = "bench-bare"
DIRECT = "bench-direct"

COUNT_APPLIED_SQL = "SELECT count(*) FROM applied_transactions WHERE site = $1"

GOAL_BUFFERED_P99_MS = Goal("<=", 10.0)
GOAL_THROUGHPUT_RATIO_PCT = Goal(">=", 60.0)
GOAL_DRAIN_PER_S = Goal(">=", 10_000.0)
GOAL_VISIBLE_P99_MS = Goal("<=", 100.0)
GOAL_ACCEPTED_TO_VISIBLE_P99_MS = Goal("<=", 450.0)
# Through a capped link the drain should fill it: bytes sent over (capacity x time).
GOAL_WAN_UTILISATION = Goal(">=", 0.7)


@dataclass(frozen=True)
class BenchConfig:
    one_way_delay_ms: int = 100
    rate_per_s: float = 200.0
    open_duration_s: float = 15.0
    concurrency: int = 32
    closed_duration_s: float = 10.0
    warmup_s: float = 2.0
    # A direct write holds one of the gateway's db_pool_size (10) connections for about three
    # round trips (BEGIN, the apply call, COMMIT), so the pool serves about 16 writes/s. At
    # 20 req/s it is saturated and overflow connections (opened and closed over the WAN per
    # request) take over; 10 req/s measures a write's own latency, not that queue.
    direct_rate_per_s: float = 10.0
    direct_open_duration_s: float = 15.0
    direct_concurrency: int = 10
    direct_closed_duration_s: float = 10.0
    visible_transactions: int = 300
    visible_rate_per_s: float = 30.0
    drain_transactions: int = 20_000
    drain_large_transactions: int = 100_000
    drain_bandwidth_mbit: float = 20.0
    # Per site, in the two-site drain (BENCH_SITES_BACKLOG overrides it).
    sites_transactions: int = 10_000
    fill_concurrency: int = 32
    settle_timeout_s: float = 120.0
    client: str = "raw"
    profile_drain: Path | None = None  # cProfile stats of the in-process drain worker
    drain_batch_size: int | None = None  # the drain worker's processor_batch_size (stack's)

    def quick(self) -> BenchConfig:
        return replace(
            self,
            open_duration_s=3.0,
            closed_duration_s=3.0,
            warmup_s=1.0,
            direct_open_duration_s=3.0,
            direct_closed_duration_s=3.0,
            visible_transactions=60,
            drain_transactions=2_000,
            drain_large_transactions=4_000,
            sites_transactions=1_000,
        )


class Clock:
    def __init__(self) -> None:
        self.started = time.monotonic()

    def say(self, message: str) -> None:
        print(f"[{time.monotonic() - self.started:6.1f}s] {message}", flush=True)


@dataclass
class Bench:
    stack: Stack
    config: BenchConfig
    token: str
    clock: Clock
    redis: Redis
    processors: dict[str, ManagedProcess] = field(default_factory=dict)
    _filled: dict[str, dict[str, Any]] = field(default_factory=dict)

    # --- processes ------------------------------------------------------------------------

    def start_gateway(self, site: str, *, with_processor: bool) -> str:
        """A secondary gateway; with_processor also starts the site's processor as its own
        process, as deploy/ runs it (ccat-api-processor), so replay competes for the
        machine's cores but not for the gateway's event loop."""
        url = self.stack.start_gateway(site, secondary=True, run_processor=False)
        if with_processor:
            self.processors[site] = self.stack.start_processor(site)
        self.clock.say(
            f"gateway {site} (secondary, processor {'running' if with_processor else 'off'})"
        )
        return url

    def start_direct_gateway(self) -> str:
        """A MAIN-type gateway whose main database is reached through the WAN simulator."""
        overrides = {
            **self.stack.settings_overrides(SITE_DIRECT, secondary=False),
            "main_db_url": self.stack.main_url_via_wan,
            "run_processor": False,
        }
        return self._start_process(
            DIRECT,
            ["-m", "ccat_api", "serve", "--host", "127.0.0.1"],
            self.stack.env_for(overrides),
        )

    def start_bare(self) -> str:
        env = {
            **os.environ,
            "BENCH_REDIS_URL": self.stack.redis.url,
            "BENCH_STREAM": BARE_STREAM,
            "PYTHONPATH": os.pathsep.join(
                p for p in (str(REPO_ROOT), os.environ.get("PYTHONPATH", "")) if p
            ),
        }
        return self._start_process(BARE, ["-m", "bench.bare_app", "--host", "127.0.0.1"], env)

    def _start_process(self, name: str, args: list[str], env: dict[str, str]) -> str:
        port = free_port()
        process = ManagedProcess(
            name,
            [sys.executable, *args, "--port", str(port)],
            env,
            self.stack.base_dir / f"{name}.log",
        )
        process.start()
        # Registered with the stack, so stack.down() stops it whatever happens.
        self.stack.gateways[name] = process
        self.stack.gateway_ports[name] = port
        if not wait_port(port, 30):
            raise RuntimeError(f"{name} did not start; see {process.log_file}")
        self.clock.say(f"{name} on port {port}")
        return f"http://127.0.0.1:{port}"

    def stop(self, name: str) -> None:
        processor = self.processors.pop(name, None)
        if processor is not None:
            processor.stop()
        process = self.stack.gateways.pop(name, None)
        self.stack.gateway_ports.pop(name, None)
        if process is not None:
            process.stop()

    def pids(self, name: str | None = None) -> dict[str, int]:
        """The processes whose CPU time a phase reports: its server, Redis, both PostgreSQL
        clusters (postmaster and backends) and the WAN simulator."""
        found = {}
        gateway = self.stack.gateways.get(name) if name else None
        if gateway is not None and gateway.process is not None:
            found["server"] = gateway.process.pid
        processor = self.processors.get(name) if name else None
        if processor is not None and processor.process is not None:
            found["processor"] = processor.process.pid
        if self.stack.redis.process is not None:
            found["redis"] = self.stack.redis.process.pid
        for label, cluster in (("main_pg", self.stack.main_db), ("replica_pg", self.stack.replica)):
            with contextlib.suppress(OSError, ValueError, IndexError):
                pid_file = cluster.data_dir / "postmaster.pid"
                found[label] = int(pid_file.read_text().split()[0])
        wan = self.stack.wan_process
        if wan is not None and wan.process is not None:
            found["wan"] = wan.process.pid
        return found

    # --- measuring ------------------------------------------------------------------------

    async def measured(
        self, name: str, run: Coroutine[Any, Any, LoadResult]
    ) -> tuple[LoadResult, dict[str, Any]]:
        """Run a load and add the CPU each process spent per completed request."""
        meter = CpuMeter(self.pids(name))
        meter.start()
        result = await run
        summary = result.summary()
        summary["cpu"] = cpu_report(meter.stop(), result.ok, result.elapsed_s)
        summary["cpu"]["machine_share"] = meter.machine_share
        return result, summary

    async def warm_up(self, target: Target, concurrency: int = 8) -> None:
        result = await closed_loop(
            target,
            concurrency=concurrency,
            duration_s=self.config.warmup_s,
            client_kind=self.config.client,
        )
        if result.ok == 0:
            raise RuntimeError(f"warm-up of {target.base_url} failed: {result.error_samples[:3]}")

    async def wait_settled(self, site: str, timeout_s: float | None = None) -> float:
        """Until the site's stream is empty and nothing awaits the replica; seconds taken."""
        keys = SiteKeys(site)
        timeout_s = timeout_s or self.config.settle_timeout_s
        started = time.perf_counter()
        deadline = started + timeout_s
        while time.perf_counter() < deadline:
            async with self.redis.pipeline(transaction=False) as pipe:
                pipe.xlen(keys.stream)
                pipe.zcard(keys.applied)
                waiting, unseen = await pipe.execute()
            if waiting == 0 and unseen == 0:
                return time.perf_counter() - started
            await asyncio.sleep(0.05)
        self.clock.say(f"WARNING: {site} did not settle within {timeout_s}s")
        return float("nan")

    def target(self, base_url: str, path: str = START_PATH, body: bytes = START_BODY) -> Target:
        return Target(base_url, path, self.token, body)

    async def open_and_closed(
        self, name: str, target: Target, results: dict[str, Any]
    ) -> tuple[LoadResult, LoadResult]:
        cfg = self.config
        opened, results["open"] = await self.measured(
            name,
            open_loop(
                target,
                rate_per_s=cfg.rate_per_s,
                duration_s=cfg.open_duration_s,
                client_kind=cfg.client,
            ),
        )
        self.clock.say(f"  open loop {cfg.rate_per_s:.0f} req/s: {_brief(opened)}")
        self.clock.say(f"    {_cpu_line(results['open']['cpu'])}")
        closed, results["closed"] = await self.measured(
            name,
            closed_loop(
                target,
                concurrency=cfg.concurrency,
                duration_s=cfg.closed_duration_s,
                client_kind=cfg.client,
            ),
        )
        self.clock.say(f"  closed loop x{cfg.concurrency}: {_brief(closed)}")
        self.clock.say(f"    {_cpu_line(results['closed']['cpu'])}")
        return opened, closed

    # --- phases ---------------------------------------------------------------------------

    async def buffered(self) -> dict[str, Any]:
        self.clock.say("phase 1: buffered writes at the secondary gateway (processor running)")
        url = self.start_gateway(SITE_BUFFERED, with_processor=True)
        results: dict[str, Any] = {"site": SITE_BUFFERED}
        try:
            target = self.target(url)
            await self.warm_up(target)
            await self.wait_settled(SITE_BUFFERED)
            await self.open_and_closed(SITE_BUFFERED, target, results)
            results["replayed_after_closed_loop_s"] = round(
                await self.wait_settled(SITE_BUFFERED), 3
            )
            self.clock.say(
                f"  its processor finished replaying {results['replayed_after_closed_loop_s']}s"
                " after the closed loop"
            )
        finally:
            self.stop(SITE_BUFFERED)
        return results

    async def bare(self) -> dict[str, Any]:
        self.clock.say("phase 2: floor, bare FastAPI + one XADD to the same Redis")
        url = self.start_bare()
        results: dict[str, Any] = {}
        try:
            target = Target(url, START_PATH, None, START_BODY)
            await self.warm_up(target)
            await self.open_and_closed(BARE, target, results)
        finally:
            self.stop(BARE)
            await self.redis.delete(BARE_STREAM)
        return results

    async def direct(self) -> dict[str, Any]:
        cfg = self.config
        self.clock.say("phase 3: direct writes from a MAIN-type gateway to main over the WAN")
        name = DIRECT
        url = self.start_direct_gateway()
        results: dict[str, Any] = {}
        try:
            target = self.target(url)
            # Opens the pool's connections through the WAN before anything is measured.
            await self.warm_up(target, concurrency=cfg.direct_concurrency)
            opened, results["open"] = await self.measured(
                name,
                open_loop(
                    target,
                    rate_per_s=cfg.direct_rate_per_s,
                    duration_s=cfg.direct_open_duration_s,
                    client_kind=cfg.client,
                ),
            )
            self.clock.say(f"  open loop {cfg.direct_rate_per_s:.0f} req/s: {_brief(opened)}")
            self.clock.say(f"    {_cpu_line(results['open']['cpu'])}")
            closed, results["closed"] = await self.measured(
                name,
                closed_loop(
                    target,
                    concurrency=cfg.direct_concurrency,
                    duration_s=cfg.direct_closed_duration_s,
                    client_kind=cfg.client,
                ),
            )
            self.clock.say(f"  closed loop x{cfg.direct_concurrency}: {_brief(closed)}")
            self.clock.say(f"    {_cpu_line(results['closed']['cpu'])}")
        finally:
            self.stop(name)
        return results

    async def visible(self) -> dict[str, Any]:
        cfg = self.config
        self.clock.say("phase 4: commit-to-visible (replica on loopback)")
        url = self.start_gateway(SITE_VISIBLE, with_processor=True)
        results: dict[str, Any] = {"site": SITE_VISIBLE}
        try:
            target = self.target(url)
            await self.warm_up(target, concurrency=2)
            await self.wait_settled(SITE_VISIBLE)
            run, results["load"] = await self.measured(
                SITE_VISIBLE,
                open_loop(
                    target,
                    rate_per_s=cfg.visible_rate_per_s,
                    duration_s=cfg.visible_transactions / cfg.visible_rate_per_s,
                    keep_bodies=True,
                    client_kind=cfg.client,
                ),
            )
            await self.wait_settled(SITE_VISIBLE)
            tx_ids = [orjson.loads(body)["tx_id"] for body in run.bodies]
            results.update(await self.commit_to_visible(url, tx_ids))
        finally:
            self.stop(SITE_VISIBLE)
        self.clock.say(
            f"  {results['visible']}/{len(tx_ids)} visible; visible_at - applied_at"
            f" p50 {results['applied_to_visible_ms']['p50']} ms,"
            f" p99 {results['applied_to_visible_ms']['p99']} ms"
        )
        return results

    async def commit_to_visible(self, url: str, tx_ids: list[str]) -> dict[str, Any]:
        """The lags of each transaction (commit-to-visible: ``visible_at - applied_at``), as
        the site's gateway at ``url`` reports them; the phases that measure it share this."""
        return _visibility(await self._statuses(url, tx_ids))

    async def _statuses(self, url: str, tx_ids: list[str]) -> list[dict[str, Any]]:
        client = RawClient(url, pool=16, headers={"authorization": f"Bearer {self.token}"})
        try:

            async def one(tx_id: str) -> dict[str, Any]:
                response = await client.request("GET", f"/transactions/{tx_id}")
                if response.status != 200:
                    return {"tx_id": tx_id, "state": f"HTTP {response.status}"}
                found: dict[str, Any] = orjson.loads(response.body)
                return found

            return list(await asyncio.gather(*(one(t) for t in tx_ids)))
        finally:
            await client.aclose()

    async def drain(self) -> dict[str, Any]:
        return await self.drain_backlog(SITE_DRAIN, self.config.drain_transactions)

    async def drain_100k(self) -> dict[str, Any]:
        return await self.drain_backlog(SITE_DRAIN_100K, self.config.drain_large_transactions)

    async def drain_bandwidth(self) -> dict[str, Any]:
        return await self.drain_backlog(
            SITE_DRAIN_BANDWIDTH,
            self.config.drain_transactions,
            bandwidth_mbit=self.config.drain_bandwidth_mbit,
        )

    async def fill_backlog(
        self,
        site: str,
        count: int,
        *,
        keep_gateway: bool = False,
        accepted: list[dict[str, Any]] | None = None,
    ) -> str:
        """Buffer ``count`` transactions at ``site`` through its gateway (no processor); the
        gateway's URL, stopped unless ``keep_gateway``. ``accepted`` collects the answers."""
        url = self.start_gateway(site, with_processor=False)
        try:
            meter = CpuMeter(self.pids(site))
            meter.start()
            filled = await fill(
                url, self.token, count, self.config.fill_concurrency, accepted=accepted
            )
            filled["cpu"] = cpu_report(meter.stop(), filled["ok"], filled["elapsed_s"])
            filled["cpu"]["machine_share"] = meter.machine_share
            self._filled[site] = filled
        finally:
            if not keep_gateway:
                self.stop(site)
        backlog = await self.stream_length(site)
        self.clock.say(
            f"  buffered {backlog:,} transactions through the API in {filled['elapsed_s']}s"
            f" ({filled['achieved_per_s']} req/s, {filled['errors']} errors)"
        )
        self.clock.say(f"    {_cpu_line(filled['cpu'])}")
        return url

    async def stream_length(self, site: str) -> int:
        """Entries in ``site``'s stream, read from that site's own Redis: ``self.redis`` is
        the first site's, which every phase's own site name shares, but a site of the stack's
        own (``drain_sites``) keeps its buffer elsewhere."""
        url = self.stack.site(site).redis.url
        if url == self.stack.redis.url:
            return int(await self.redis.xlen(SiteKeys(site).stream))
        redis = make_redis(url)
        try:
            return int(await redis.xlen(SiteKeys(site).stream))
        finally:
            await redis.aclose()

    async def drain_backlog(
        self, site: str, count: int, *, bandwidth_mbit: float | None = None
    ) -> dict[str, Any]:
        """Buffer ``count`` transactions with no processor, then run the production worker
        (``SiteWorker.run``: processor and LSN tracker) in this process until the stream is
        empty (all applied on main) and nothing awaits the replica (all visible)."""
        cfg = self.config
        link = f", WAN capped at {bandwidth_mbit:g} Mbit/s each way" if bandwidth_mbit else ""
        self.clock.say(
            f"phase {site}: backlog drain, {count:,} transactions buffered with no processor{link}"
        )
        keys = SiteKeys(site)
        results: dict[str, Any] = {"site": site, "bandwidth_mbit": bandwidth_mbit}
        await self.fill_backlog(site, count)
        results["fill"] = self._filled.pop(site)
        backlog = int(await self.redis.xlen(keys.stream))
        results["backlog"] = backlog
        overrides = {**self.stack.settings_overrides(site), "run_processor": False}
        if cfg.drain_batch_size:
            overrides["processor_batch_size"] = cfg.drain_batch_size
        settings = Settings.model_validate(overrides)
        results["batch_size"] = settings.processor_batch_size
        worker_redis = make_redis(settings.redis_url)
        worker = build_worker(settings, worker_redis)
        stop = asyncio.Event()
        applied_s = visible_s = float("nan")
        if bandwidth_mbit:
            self.stack.wan.set_bandwidth(bandwidth_mbit)
        wan_before = _wan_bytes(self.stack.wan.state())
        meter = CpuMeter(self.pids())
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
                async with self.redis.pipeline(transaction=False) as pipe:
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
            wan_after = _wan_bytes(self.stack.wan.state())
            if bandwidth_mbit:
                self.stack.wan.set_bandwidth(None)
            if profiler is not None and cfg.profile_drain is not None:
                profiler.disable()
                cfg.profile_drain.parent.mkdir(parents=True, exist_ok=True)
                profiler.dump_stats(cfg.profile_drain)
                self.clock.say(f"  drain worker profile written to {cfg.profile_drain}")
        results["cpu"] = cpu_report(meter.stop(), backlog, applied_s)
        results["cpu"]["machine_share"] = meter.machine_share
        results["batches"] = batches.summary()
        if task.done() and not task.cancelled() and task.exception() is not None:
            self.clock.say(f"  WARNING: the worker failed: {task.exception()!r}")
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
        results["dead_letters"] = int(await self.redis.zcard(keys.dead))
        results["applied_on_main"] = await self.applied_on_main(site)
        first = results["batches"]
        self.clock.say(f"  {_cpu_line(results['cpu'], 'tx')}")
        self.clock.say(
            f"  replay batches: {first['count']}, mean {first['mean_size']} tx,"
            f" {first['apply_ms_total']} ms in the replay call on main (WAN round trips"
            f" included); the first batch left {first['first_sent_s']}s after the worker"
            f" started (connect, fence, schema check, reports); WAN bytes per tx"
            f" {results['wan_bytes_up_per_tx']:.0f} up, {results['wan_bytes_down_per_tx']:.0f}"
            " down"
        )
        self.clock.say(
            f"  all applied on main in {applied_s:.2f}s ({results['applied_per_s']} tx/s),"
            f" all visible in {visible_s:.2f}s; {results['dead_letters']} dead letters,"
            f" {results['applied_on_main']:,} recorded on main"
        )
        return results

    async def applied_on_main(self, site: str) -> int:
        """How many of the site's transactions main has recorded (read on loopback)."""
        conn = await asyncpg.connect(self.stack.main_db.dsn(), timeout=10)
        try:
            count = await conn.fetchval(COUNT_APPLIED_SQL, site)
        finally:
            await conn.close()
        return int(count)

    async def drain_writes(self) -> dict[str, Any]:
        """Buffered writes at 200 req/s while the site's processor (its own process, as
        deploy/ runs it) drains a 100,000 backlog on the same cores: their latency."""
        cfg = self.config
        site = SITE_DRAIN_WRITES
        keys = SiteKeys(site)
        self.clock.say(
            f"phase {site}: buffered writes at {cfg.rate_per_s:.0f} req/s while a"
            f" {cfg.drain_large_transactions:,} backlog drains"
        )
        url = await self.fill_backlog(site, cfg.drain_large_transactions, keep_gateway=True)
        results: dict[str, Any] = {"site": site, "fill": self._filled.pop(site)}
        try:
            target = self.target(url)
            backlog = int(await self.redis.xlen(keys.stream))
            results["backlog"] = backlog
            drained = asyncio.Event()
            self.processors[site] = self.stack.start_processor(site)
            started = time.perf_counter()
            load = asyncio.create_task(
                self.measured(
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
                if await self.applied_on_main(site) >= backlog:
                    break
                await asyncio.sleep(0.25)
            drained_s = time.perf_counter() - started
            drained.set()
            run, results["load"] = await load
        finally:
            self.stop(site)
        results["drained_s"] = round(drained_s, 2)
        results["drained_per_s"] = round(backlog / drained_s, 1)
        self.clock.say(f"  open loop {cfg.rate_per_s:.0f} req/s during the drain: {_brief(run)}")
        self.clock.say(f"    {_cpu_line(results['load']['cpu'])}")
        self.clock.say(
            f"  the backlog of {backlog:,} was on main after {drained_s:.1f}s"
            f" ({results['drained_per_s']} tx/s with the writes alongside)"
        )
        return results


def _wan_bytes(state: dict[str, Any]) -> tuple[int, int]:
    """Bytes the WAN carried so far, towards main and back, over all its links."""
    links = state.get("links", [])
    return (
        sum(int(link["bytes_up"]) for link in links),
        sum(int(link["bytes_down"]) for link in links),
    )


async def fill(
    base_url: str,
    token: str,
    count: int,
    concurrency: int,
    *,
    accepted: list[dict[str, Any]] | None = None,
) -> dict[str, Any]:
    """Buffer ``count`` transactions through the API, ``concurrency`` clients back to back:
    pairs of an executed-obs-unit start and one raw data file in it (the file's transaction
    depends on the start's, as an instrument's would). Each 201 answer (id, tx_id) goes to
    ``accepted`` when given, for checks that need to know what was acknowledged."""
    client = RawClient(
        base_url,
        pool=concurrency,
        headers={"authorization": f"Bearer {token}", "content-type": "application/json"},
    )
    latencies_ms: list[float] = []
    errors: list[str] = []
    pairs = iter(range((count + 1) // 2))

    async def post(path: str, body: bytes) -> dict[str, Any] | None:
        started = time.perf_counter()
        try:
            response = await client.request("POST", path, body)
        except ClientError as exc:
            errors.append(f"{path}: {exc}")
            return None
        if response.status != 201:
            errors.append(f"{path}: HTTP {response.status} {response.body[:200]!r}")
            return None
        latencies_ms.append((time.perf_counter() - started) * 1000)
        answer: dict[str, Any] = orjson.loads(response.body)
        if accepted is not None:
            accepted.append({"path": path, **answer})
        return answer

    async def worker() -> None:
        for pair in pairs:
            started = await post(START_PATH, START_BODY)
            if started is None or 2 * pair + 1 >= count:
                continue
            eou_id = started["id"]
            await post(
                FILES_PATH,
                orjson.dumps(
                    {
                        "name": f"scan_{pair}.fits",
                        "relative_path": f"bench/{eou_id}/scan_{pair}.fits",
                        "size_bytes": 52_428_800,
                        "checksum": f"sha256:{pair:064x}",
                        "file_type": "fits",
                        "instrument_module_id": 1,
                        "executed_obs_unit_id": eou_id,
                    }
                ),
            )

    started = time.perf_counter()
    try:
        await asyncio.gather(*(worker() for _ in range(concurrency)))
    finally:
        await client.aclose()
    elapsed_s = time.perf_counter() - started
    return {
        "requests": count,
        "ok": len(latencies_ms),
        "errors": len(errors),
        "error_samples": errors[:5],
        "elapsed_s": round(elapsed_s, 2),
        "achieved_per_s": round(len(latencies_ms) / elapsed_s, 1),
        "p50_ms": round(percentile(latencies_ms, 50), 2),
        "p99_ms": round(percentile(latencies_ms, 99), 2),
    }


def cpu_report(spent: dict[str, float], count: int, elapsed_s: float) -> dict[str, Any]:
    """CPU per request (or transaction) for each process, and how many cores each kept busy."""
    valid = {who: cpu_s for who, cpu_s in spent.items() if not math.isnan(cpu_s)}
    busy = {who: round(cpu_s / elapsed_s, 2) for who, cpu_s in valid.items()} if elapsed_s else {}
    busy["total"] = round(sum(valid.values()) / elapsed_s, 2) if elapsed_s else math.nan
    return {
        "ms_per_request": {who: round(1000 * s / max(1, count), 3) for who, s in valid.items()},
        "cores_busy": busy,
    }


def _cpu_line(cpu: dict[str, Any], unit: str = "request") -> str:
    per = ", ".join(f"{who} {ms:.2f}" for who, ms in cpu["ms_per_request"].items())
    line = f"CPU ms per {unit}: {per}; these kept {cpu['cores_busy']['total']} cores busy"
    share = cpu.get("machine_share") or {}
    if share:
        line += (
            f"; machine: {100 * share.get('idle', 0):.0f}% idle,"
            f" {100 * share.get('iowait', 0):.0f}% iowait, {100 * share.get('steal', 0):.0f}% steal"
        )
    return line


class BatchLog(logging.Handler):
    """Collects the processor's per-batch log lines ("replayed N transactions ... in M ms")."""

    def __init__(self) -> None:
        super().__init__(logging.INFO)
        self.sizes: list[int] = []
        self.apply_ms: list[float] = []
        self.messages: list[str] = []
        # perf_counter() when the worker started; the first batch's send time is taken from it.
        self.started: float | None = None
        self.first_sent_s = math.nan
        self._logger = logging.getLogger(PROCESSOR_LOGGER)
        self._level = self._logger.level
        self._logger.addHandler(self)
        self._logger.setLevel(logging.INFO)

    def emit(self, record: logging.LogRecord) -> None:
        message = record.getMessage()
        self.messages.append(message)
        args = record.args if isinstance(record.args, tuple) else ()
        if message.startswith("replayed") and len(args) >= 2:
            with contextlib.suppress(TypeError, ValueError):
                self.sizes.append(int(args[0]))  # type: ignore[call-overload]
                self.apply_ms.append(float(args[-1]))  # type: ignore[arg-type]
                if len(self.apply_ms) == 1 and self.started is not None:
                    done_s = time.perf_counter() - self.started
                    self.first_sent_s = round(done_s - self.apply_ms[0] / 1000, 2)

    def detach(self) -> None:
        self._logger.removeHandler(self)
        self._logger.setLevel(self._level)

    def summary(self) -> dict[str, Any]:
        return {
            "count": len(self.sizes),
            "mean_size": round(sum(self.sizes) / len(self.sizes)) if self.sizes else 0,
            "apply_ms_total": round(sum(self.apply_ms)),
            "first_sent_s": self.first_sent_s,
            "apply_ms": [round(ms) for ms in self.apply_ms],
            "sizes": self.sizes,
            "log": self.messages[:50],
        }


def _brief(result: LoadResult) -> str:
    text = (
        f"{result.achieved_per_s:.0f} req/s, p50 {result.percentile_ms(50):.1f} ms,"
        f" p99 {result.percentile_ms(99):.1f} ms ({result.ok} ok"
    )
    if result.errors:
        text += f", {result.errors} errors, e.g. {result.error_samples[0]}"
    return text + ")"


def _visibility(statuses: list[dict[str, Any]]) -> dict[str, Any]:
    """Percentiles of the lags between a transaction's created, applied and visible times."""

    def lags(start: str, end: str) -> list[float]:
        return [
            (s[end] - s[start]) * 1000
            for s in statuses
            if s.get(start) is not None and s.get(end) is not None
        ]

    def spread(values: list[float]) -> dict[str, float]:
        return {
            "count": len(values),
            "p50": round(percentile(values, 50), 1),
            "p99": round(percentile(values, 99), 1),
            "max": round(max(values, default=math.nan), 1),
        }

    return {
        "transactions": len(statuses),
        "visible": sum(1 for s in statuses if s.get("state") == "visible"),
        "states": sorted({str(s.get("state")) for s in statuses}),
        "applied_to_visible_ms": spread(lags("applied_at", "visible_at")),
        "created_to_applied_ms": spread(lags("created_at", "applied_at")),
        "created_to_visible_ms": spread(lags("created_at", "visible_at")),
    }


def figures(phases: dict[str, Any], config: BenchConfig) -> list[Row]:
    """The table's rows, for the phases that ran (a failed phase shows n/a)."""
    rate = f"@{config.rate_per_s:.0f} req/s"
    direct_rate = f"@{config.direct_rate_per_s:.0f} req/s"
    closed = f"(closed x{config.concurrency})"

    def get(*path: str) -> float:
        node: Any = phases
        for part in path:
            if not isinstance(node, dict) or part not in node:
                return math.nan
            node = node[part]
        return float(node) if isinstance(node, int | float) else math.nan

    def ratio(numerator: float, denominator: float, scale: float = 1.0) -> float:
        return scale * numerator / denominator if denominator else math.nan

    # (phases the row needs, the row)
    candidates: list[tuple[tuple[str, ...], Row]] = [
        (("buffered",), Row("buffered_p50_ms", f"buffered write p50 {rate}",
            get("buffered", "open", "p50_ms"), "ms")),
        (("buffered",), Row("buffered_p99_ms", f"buffered write p99 {rate}",
            get("buffered", "open", "p99_ms"), "ms", GOAL_BUFFERED_P99_MS)),
        (("buffered",), Row("buffered_rate", f"buffered write achieved {rate}",
            get("buffered", "open", "achieved_per_s"), "req/s")),
        (("buffered",), Row("buffered_max", f"buffered write max {closed}",
            get("buffered", "closed", "achieved_per_s"), "req/s")),
        (("bare",), Row("bare_p50_ms", f"floor (bare XADD) p50 {rate}",
            get("bare", "open", "p50_ms"), "ms")),
        (("bare",), Row("bare_p99_ms", f"floor (bare XADD) p99 {rate}",
            get("bare", "open", "p99_ms"), "ms")),
        (("bare",), Row("bare_max", f"floor (bare XADD) max {closed}",
            get("bare", "closed", "achieved_per_s"), "req/s")),
        (("buffered", "bare"), Row("buffered_vs_bare_pct", "buffered / bare max throughput",
            ratio(get("buffered", "closed", "achieved_per_s"),
                  get("bare", "closed", "achieved_per_s"), 100),
            "%", GOAL_THROUGHPUT_RATIO_PCT)),
        (("direct",), Row("direct_p50_ms", f"direct-to-main write p50 {direct_rate}",
            get("direct", "open", "p50_ms"), "ms")),
        (("direct",), Row("direct_p99_ms", f"direct-to-main write p99 {direct_rate}",
            get("direct", "open", "p99_ms"), "ms")),
        (("direct",), Row("direct_rate", f"direct-to-main write achieved {direct_rate}",
            get("direct", "open", "achieved_per_s"), "req/s")),
        (("direct",), Row("direct_max",
            f"direct-to-main write max (closed x{config.direct_concurrency})",
            get("direct", "closed", "achieved_per_s"), "req/s")),
        (("direct", "buffered"), Row("direct_vs_buffered_p50", "direct / buffered p50 latency",
            ratio(get("direct", "open", "p50_ms"), get("buffered", "open", "p50_ms")), "x")),
        (("visible",), Row("visible_p50_ms", "commit-to-visible p50 (visible_at - applied_at)",
            get("visible", "applied_to_visible_ms", "p50"), "ms")),
        (("visible",), Row("visible_p99_ms", "commit-to-visible p99 (visible_at - applied_at)",
            get("visible", "applied_to_visible_ms", "p99"), "ms", GOAL_VISIBLE_P99_MS)),
        (("visible",), Row("accepted_to_visible_p99_ms",
            "accepted-to-visible p99 (visible_at - created_at)",
            get("visible", "created_to_visible_ms", "p99"), "ms",
            GOAL_ACCEPTED_TO_VISIBLE_P99_MS)),
        (("visible",), Row("accepted_to_applied_p99_ms",
            "  of which accepted-to-applied p99 (applied_at - created_at)",
            get("visible", "created_to_applied_ms", "p99"), "ms")),
        (("drain",), Row("drain_fill_rate",
            f"backlog fill through the API (closed x{config.fill_concurrency})",
            get("drain", "fill", "achieved_per_s"), "req/s")),
        (("drain",), Row("drain_applied_per_s",
            f"backlog drain, {get('drain', 'backlog'):,.0f} tx applied on main",
            get("drain", "applied_per_s"), "tx/s", GOAL_DRAIN_PER_S)),
        (("drain",), Row("drain_applied_s", "backlog drain: time until all applied",
            get("drain", "applied_s"), "s")),
        (("drain",), Row("drain_visible_s", "backlog drain: time until all visible",
            get("drain", "visible_s"), "s")),
        (("drain",), Row("drain_first_batch_s",
            "backlog drain: first batch sent after (connect, fence, reports)",
            get("drain", "batches", "first_sent_s"), "s")),
        (("drain_100k",), Row("drain_100k_applied_per_s",
            f"backlog drain, {get('drain_100k', 'backlog'):,.0f} tx applied on main",
            get("drain_100k", "applied_per_s"), "tx/s", GOAL_DRAIN_PER_S)),
        (("drain_100k",), Row("drain_100k_visible_s",
            "backlog drain 100k: time until all visible",
            get("drain_100k", "visible_s"), "s")),
        (("drain_bandwidth",), Row("drain_bandwidth_applied_per_s",
            f"backlog drain, {get('drain_bandwidth', 'backlog'):,.0f} tx, WAN capped at"
            f" {config.drain_bandwidth_mbit:g} Mbit/s",
            get("drain_bandwidth", "applied_per_s"), "tx/s")),
        (("drain_bandwidth",), Row("drain_bandwidth_bytes_per_tx",
            "  WAN bytes per transaction towards main",
            get("drain_bandwidth", "wan_bytes_up_per_tx"), "B")),
        (("drain_bandwidth",), Row("drain_bandwidth_down_bytes_per_tx",
            "  WAN bytes per transaction back from main",
            get("drain_bandwidth", "wan_bytes_down_per_tx"), "B")),
        (("drain_bandwidth",), Row("drain_bandwidth_utilisation",
            "  capped link used (bytes up / capacity x drain time)",
            get("drain_bandwidth", "wan_utilisation"), "", GOAL_WAN_UTILISATION)),
        (("drain_writes",), Row("drain_writes_p99_ms",
            f"buffered write p99 {rate} while a 100k backlog drains",
            get("drain_writes", "load", "p99_ms"), "ms", GOAL_BUFFERED_P99_MS)),
        (("drain_writes",), Row("drain_writes_drained_per_s",
            "  that backlog's drain alongside the writes",
            get("drain_writes", "drained_per_s"), "tx/s")),
    ]  # fmt: skip
    rows = [row for needs, row in candidates if all(n in phases for n in needs)]
    single_per_s = get("drain", "applied_per_s")
    return rows + sites_rows(phases, single_per_s, GOAL_DRAIN_PER_S, GOAL_VISIBLE_P99_MS)


def issue_operator_token(stack: Stack) -> str:
    async def make() -> str:
        db = PrimaryDatabase(
            make_engine(stack.main_db.url(), pool_size=1, connect_timeout_s=5, application_name="b")
        )
        try:
            return (await issue_service_token(db, "bench-operator", Role.OPERATOR.value)).plaintext
        finally:
            await db.dispose()

    return asyncio.run(make())


PHASES: dict[str, Callable[[Bench], Awaitable[dict[str, Any]]]] = {
    "buffered": Bench.buffered,
    "bare": Bench.bare,
    "direct": Bench.direct,
    "visible": Bench.visible,
    "drain": Bench.drain,
    # Right after the one-site drain: main holds about as much then, so the two compare.
    "drain_sites": drain_sites,
    "drain_100k": Bench.drain_100k,
    "drain_bandwidth": Bench.drain_bandwidth,
    "drain_writes": Bench.drain_writes,
}


async def run_phases(
    stack: Stack, config: BenchConfig, token: str, clock: Clock, chosen: list[str]
) -> dict[str, Any]:
    redis = make_redis(stack.redis.url)
    bench = Bench(stack, config, token, clock, redis)
    phases: dict[str, Any] = {}
    try:
        for name in chosen:
            try:
                phases[name] = await PHASES[name](bench)
            except Exception as exc:  # a broken phase is reported, the others still run
                clock.say(f"phase {name} FAILED: {type(exc).__name__}: {exc}")
                phases[name] = {"error": f"{type(exc).__name__}: {exc}"}
    finally:
        await redis.aclose()
    return phases


def _run_async(coroutine: Coroutine[Any, Any, T]) -> T:
    """uvloop when available (as uvicorn uses), so the client costs the server less CPU."""
    try:
        import uvloop
    except ImportError:
        return asyncio.run(coroutine)
    return uvloop.run(coroutine)


def _keep_logs(stack: Stack, directory: Path) -> None:
    """Copy the stack's process logs (gateways, WAN, PostgreSQL, Redis) out of its temporary
    directory, which stack.down() removes."""
    with contextlib.suppress(OSError):
        shutil.rmtree(directory, ignore_errors=True)
        directory.mkdir(parents=True, exist_ok=True)
        for log in stack.base_dir.rglob("*.log"):
            shutil.copy2(log, directory / log.name)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="every phase, briefly")
    parser.add_argument(
        "--phases",
        default=",".join(PHASES),
        help=f"comma-separated subset of {','.join(PHASES)}",
    )
    parser.add_argument("--client", choices=("raw", "httpx"), default="raw")
    parser.add_argument("--out", type=Path, default=RESULTS_FILE)
    parser.add_argument(
        "--drain-transactions", type=int, help="backlog size for the drain (default 20,000)"
    )
    parser.add_argument(
        "--drain-batch-size",
        type=int,
        help="processor_batch_size of the drain worker (default: the setting's, 5000)",
    )
    parser.add_argument(
        "--profile-drain",
        type=Path,
        metavar="FILE",
        help="write cProfile stats of the drain worker (this process) to FILE",
    )
    args = parser.parse_args(argv)
    chosen = [p.strip() for p in args.phases.split(",") if p.strip()]
    unknown = set(chosen) - set(PHASES)
    if unknown:
        parser.error(f"unknown phases {sorted(unknown)}")
    config = BenchConfig(
        client=args.client,
        profile_drain=args.profile_drain,
        drain_batch_size=args.drain_batch_size,
    )
    if args.quick:
        config = config.quick()
    if args.drain_transactions:
        config = replace(config, drain_transactions=args.drain_transactions)
    if os.environ.get(SITES_BACKLOG_ENV):
        config = replace(config, sites_transactions=int(os.environ[SITES_BACKLOG_ENV]))

    clock = Clock()
    before = machine()
    clock.say(
        f"{before['cores']} cores, load average {before['load_avg_1m']}; WAN one-way delay"
        f" {config.one_way_delay_ms} ms ({2 * config.one_way_delay_ms} ms round trip)"
    )
    stack = Stack(
        StackConfig(
            wan_delay_ms=config.one_way_delay_ms,
            replica_via_wan=False,
            gateways=False,
            processor="none",
        )
    )
    phases: dict[str, Any] = {}
    environment: dict[str, Any] = {"machine": before}
    try:
        stack.up(progress=lambda m: clock.say(f"starting {m}"))
        stack.wan.set_delay(config.one_way_delay_ms)
        environment["wan"] = stack.wan.state()
        environment["redis_dir_fsync"] = fsync_probe(stack.redis.data_dir)
        clock.say(f"fsync latency where Redis keeps its AOF: {environment['redis_dir_fsync']}")
        token = issue_operator_token(stack)
        stack.wait_replica_caught_up()
        phases = _run_async(run_phases(stack, config, token, clock, chosen))
    finally:
        _keep_logs(stack, args.out.parent / "logs")
        stack.down()
    environment["machine_after"] = machine()

    rows = figures(phases, config)
    report = {
        "finished_at": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        "duration_s": round(time.monotonic() - clock.started, 1),
        "config": asdict(config),
        "environment": environment,
        "figures": {row.key: row.as_dict() for row in rows},
        "phases": phases,
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(report, indent=2, default=str) + "\n")
    print()
    print(
        table(
            rows,
            f"ccat_api benchmarks: {before['cores']} cores, WAN {2 * config.one_way_delay_ms} ms"
            f" round trip, {report['duration_s']}s"
            + (" (--quick: short runs, figures indicative only)" if args.quick else ""),
        )
    )
    failed = {name: p["error"] for name, p in phases.items() if "error" in p}
    for name, error in failed.items():
        print(f"phase {name} failed: {error}")
    print(f"figures written to {args.out}")
    # Timings never fail a run; a transaction lost or applied twice does.
    problem = exactly_once_failure(phases)
    if problem:
        print(f"CHECK FAILED: {problem}")
        sys.exit(1)


if __name__ == "__main__":
    main()
