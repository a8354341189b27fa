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
import json
import os
import sys
import time
from collections.abc import Awaitable, Callable
from dataclasses import asdict, replace
from pathlib import Path
from typing import Any

from bench import drain_phases, write_phases
from bench.figures import figures
from bench.report import table
from bench.rig import Bench
from bench.run_config import RESULTS_FILE, BenchConfig
from bench.runner import Clock, keep_logs, run_async
from bench.sites import SITES_BACKLOG_ENV, drain_sites, exactly_once_failure
from bench.sysinfo import fsync_probe, machine
from bench.tokens import issue_operator_token
from ccat_api.devstack.stack import Stack, StackConfig
from ccat_api.runtime import make_redis

# This module is the command line; the benchmark's pieces import only modules later in this
# list, so none imports this one (or another cyclically): figures, sites, drain_phases,
# write_phases, rig (Bench), measures, fill, tokens, run_config, runner.

PHASES: dict[str, Callable[[Bench], Awaitable[dict[str, Any]]]] = {
    "buffered": write_phases.buffered,
    "bare": write_phases.bare,
    "direct": write_phases.direct,
    "visible": write_phases.visible,
    "drain": drain_phases.drain,
    # Right after the one-site drain: main holds about as much then, so the two compare.
    "drain_sites": drain_sites,
    "drain_100k": drain_phases.drain_100k,
    "drain_bandwidth": drain_phases.drain_bandwidth,
    "drain_writes": drain_phases.drain_writes,
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
        phases = run_async(run_phases(stack, config, token, clock, chosen))
    finally:
        keep_logs(stack, args.out.parent / "logs")
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
