"""The bench rig each phase of ``bench.run`` works with (``Bench``): the stack, the processes
a phase starts on it (gateways, processors, the bare floor app) and stops, and how a phase
loads them and measures what they spent."""

from __future__ import annotations

import asyncio
import contextlib
import math
import os
import sys
from collections.abc import Coroutine
from dataclasses import dataclass, field
from typing import Any

import asyncpg
import orjson
from redis.asyncio import Redis

from bench.fill import fill
from bench.load import LoadResult, RawClient, Target, closed_loop, open_loop
from bench.measures import brief, cpu_line, cpu_report, visibility
from bench.run_config import (
    BARE,
    BARE_STREAM,
    DIRECT,
    SITE_DIRECT,
    START_BODY,
    START_PATH,
    BenchConfig,
)
from bench.runner import REPO_ROOT, Clock, wait_settled
from bench.sysinfo import CpuMeter
from ccat_api.buffering.keys import SiteKeys
from ccat_api.devstack.stack import ManagedProcess, Stack
from ccat_api.devstack.system import free_port, wait_port
from ccat_api.runtime import make_redis

COUNT_APPLIED_SQL = "SELECT count(*) FROM applied_transactions WHERE site = $1"


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
        timeout_s = timeout_s or self.config.settle_timeout_s
        taken = await wait_settled(self.redis, SiteKeys(site), timeout_s)
        if math.isnan(taken):
            self.clock.say(f"WARNING: {site} did not settle within {timeout_s}s")
        return taken

    def target(self, base_url: str, path: str = START_PATH, body: bytes = START_BODY) -> Target:
        return Target(base_url, path, self.token, body)

    async def open_and_closed(
        self, name: str, target: Target, results: dict[str, Any], *, direct: bool = False
    ) -> tuple[LoadResult, LoadResult]:
        """An open loop, then a closed loop, each measured into ``results`` ("open",
        "closed"): at the buffered writes' rate and concurrency, or with ``direct`` at the
        direct-to-main writes' (a direct write holds a pool connection over the WAN)."""
        cfg = self.config
        if direct:
            rate_per_s, open_s = cfg.direct_rate_per_s, cfg.direct_open_duration_s
            concurrency, closed_s = cfg.direct_concurrency, cfg.direct_closed_duration_s
        else:
            rate_per_s, open_s = cfg.rate_per_s, cfg.open_duration_s
            concurrency, closed_s = cfg.concurrency, cfg.closed_duration_s
        opened = await self._measured_said(
            name,
            results,
            "open",
            f"open loop {rate_per_s:.0f} req/s",
            open_loop(target, rate_per_s=rate_per_s, duration_s=open_s, client_kind=cfg.client),
        )
        closed = await self._measured_said(
            name,
            results,
            "closed",
            f"closed loop x{concurrency}",
            closed_loop(
                target, concurrency=concurrency, duration_s=closed_s, client_kind=cfg.client
            ),
        )
        return opened, closed

    async def _measured_said(
        self,
        name: str,
        results: dict[str, Any],
        key: str,
        label: str,
        run: Coroutine[Any, Any, LoadResult],
    ) -> LoadResult:
        """``measured`` into ``results[key]``, then the load's line and its CPU line."""
        done, results[key] = await self.measured(name, run)
        self.clock.say(f"  {label}: {brief(done)}")
        self.clock.say(f"    {cpu_line(results[key]['cpu'])}")
        return done

    # --- backlogs, and what became of their transactions ----------------------------------

    async def commit_to_visible(self, url: str, tx_ids: list[str]) -> dict[str, Any]:
        """The lags of each transaction (commit-to-visible: ``visible_at - applied_at``), as
        the site's gateway at ``url`` reports them; the phases that measure it share this."""
        return visibility(await self._statuses(url, tx_ids))

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
        self.clock.say(f"    {cpu_line(filled['cpu'])}")
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

    async def applied_on_main(self, site: str) -> int:
        """How many of the site's transactions main has recorded (read on loopback)."""
        conn = await asyncpg.connect(self.stack.main_db.dsn(), timeout=10)
        try:
            count = await conn.fetchval(COUNT_APPLIED_SQL, site)
        finally:
            await conn.close()
        return int(count)
