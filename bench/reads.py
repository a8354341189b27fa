"""Reads and Redis memory with a day's backlog buffered: ``python -m bench.reads``.

One local stack (main PostgreSQL, a streaming replica, Redis with AOF, no WAN delay and no
processor: a WAN outage). First ``--replica`` transactions are buffered and drained, so the
replica holds some executed obs units and files; the reads are measured with the buffer
empty. Then 100,000 transactions are buffered through a secondary gateway's HTTP API (50,000
executed-obs-unit starts and a raw data file in each, 32 clients, as ``bench.fill.fill``) and
the same reads are measured again:

- list: ``GET /executed_obs_units?obs_unit_id=1&limit=50`` (every buffered unit has this
  parent, so the filter matches 50,000 buffered records: the worst case for the merge);
- files: ``GET /raw_data_files?executed_obs_unit_id=...&limit=50`` of a buffered unit;
- get-by-id: ``GET /executed_obs_units/{id}`` of a buffered unit (of a replica one when empty).

Each read is sent one at a time (no queueing), ``--samples`` times; p50/p99 and the gateway's
CPU per read. Redis ``used_memory`` per buffered transaction is taken over the fill; the
retained figure per settled transaction after the worker has drained all of them, they are
visible and their unique-value claims have expired (status hashes kept for the status
window). The gateway's RSS is read from /proc with everything buffered. Prints figures and
"meets" or "misses"; never fails on them.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import math
import time
from pathlib import Path
from typing import Any

from redis.asyncio import Redis

from bench.fill import fill
from bench.load import RawClient, percentile
from bench.report import Goal, Row, table
from bench.runner import REPO_ROOT
from bench.sysinfo import process_cpu_s
from bench.tokens import issue_operator_token
from ccat_api.buffering.keys import SiteKeys
from ccat_api.config import Settings
from ccat_api.devstack.stack import Stack, StackConfig
from ccat_api.runtime import build_worker, make_redis

SITE = "bench-reads"
TRANSACTIONS = 100_000
REPLICA_TRANSACTIONS = 2_000
SAMPLES = 300
CONCURRENCY = 32
PAGE = 50
# A drain that moves nothing for this long is reported (NaN) rather than waited for.
STALL_S = 180
RESULTS_FILE = REPO_ROOT / "bench" / "results" / "reads.json"

GOAL_LIST_P99_MS = Goal("<=", 25.0)
GOAL_LIST_VS_EMPTY = Goal("<=", 2.0)
GOAL_GET_P99_MS = Goal("<=", 5.0)
GOAL_BUFFERED_BYTES = Goal("<=", 1536.0)
GOAL_RETAINED_BYTES = Goal("<=", 200.0)


async def used_memory(redis: Redis) -> int:
    return int((await redis.info("memory"))["used_memory"])


def rss_mib(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return math.nan


async def sample_reads(client: RawClient, paths: list[str], pid: int) -> dict[str, Any]:
    """Each path once, one at a time, after a few unmeasured reads to warm the caches."""
    for path in paths[:10]:
        await client.request("GET", path)
    latencies_ms: list[float] = []
    errors = 0
    cpu_before = process_cpu_s(pid)
    for path in paths:
        started = time.perf_counter()
        response = await client.request("GET", path)
        latencies_ms.append((time.perf_counter() - started) * 1000)
        if response.status != 200:
            errors += 1
    cpu_ms = 1000 * (process_cpu_s(pid) - cpu_before) / len(paths)
    return {
        "samples": len(paths),
        "errors": errors,
        "p50_ms": round(percentile(latencies_ms, 50), 2),
        "p99_ms": round(percentile(latencies_ms, 99), 2),
        "max_ms": round(max(latencies_ms), 2),
        "gateway_cpu_ms": round(cpu_ms, 2),
    }


async def some_pks(redis: Redis, keys: SiteKeys, model: str, count: int) -> list[str]:
    found: list[bytes] = await redis.hrandfield(keys.overlay(model), count)  # type: ignore[assignment]
    return [f.decode() for f in found]


async def reads(
    client: RawClient, redis: Redis, keys: SiteKeys, pid: int, units: list[str], samples: int
) -> dict[str, Any]:
    lists = [f"/executed_obs_units?obs_unit_id=1&limit={PAGE}"] * samples
    files = [
        f"/raw_data_files?executed_obs_unit_id={units[i % len(units)]}&limit={PAGE}"
        for i in range(samples)
    ]
    gets = [f"/executed_obs_units/{units[i % len(units)]}" for i in range(samples)]
    return {
        "list": await sample_reads(client, lists, pid),
        "files": await sample_reads(client, files, pid),
        "get": await sample_reads(client, gets, pid),
    }


def replica_units(stack: Stack) -> list[str]:
    out = stack.replica.psql("SELECT id FROM executed_obs_units ORDER BY random() LIMIT 50")
    return [line.strip() for line in out.splitlines() if line.strip()]


async def drain(stack: Stack, redis: Redis, claims_gone: bool) -> float:
    """Run the site's worker until everything is applied and visible (and, if asked, until
    the unique-value claims have expired); seconds taken."""
    settings = Settings.model_validate(stack.settings_overrides(SITE))
    keys = SiteKeys(SITE)
    worker = build_worker(settings, redis)
    stop = asyncio.Event()
    started = time.monotonic()
    running = asyncio.create_task(worker.run(stop))
    try:
        last, moved_at = None, time.monotonic()
        while True:
            backlog = await worker.processor.backlog()
            if backlog == (0, 0):
                break
            if backlog != last:
                last, moved_at = backlog, time.monotonic()
            elif time.monotonic() - moved_at > STALL_S:
                print(f"the drain made no progress for {STALL_S} s at {backlog}", flush=True)
                return math.nan
            await asyncio.sleep(0.5)
        taken = time.monotonic() - started
        deadline = time.monotonic() + 120
        while claims_gone and time.monotonic() < deadline:
            left = [k async for k in redis.scan_iter(match=keys.overlay_unique_prefix + "*")]
            if not left:
                break
            await asyncio.sleep(2)
    finally:
        stop.set()
        await running
        await worker.processor.close()
        await worker.tracker.close()
    return taken


async def bucket_encodings(redis: Redis, keys: SiteKeys) -> dict[str, int]:
    """How many visible-status buckets Redis keeps in each encoding (listpack: compact)."""
    found: dict[str, int] = {}
    async for key in redis.scan_iter(match=f"{keys.visible_prefix}[0-9]*", count=10_000):
        encoding = (await redis.object("encoding", key)).decode()
        found[encoding] = found.get(encoding, 0) + 1
    return found


async def measure(stack: Stack, url: str, token: str, args: argparse.Namespace) -> dict[str, Any]:
    keys = SiteKeys(SITE)
    redis = make_redis(stack.redis.url)
    pid = stack.gateways[SITE].process.pid  # type: ignore[union-attr]
    client = RawClient(url, pool=1, headers={"authorization": f"Bearer {token}"})
    result: dict[str, Any] = {"transactions": args.transactions}
    try:
        seeded = await fill(url, token, args.replica, CONCURRENCY)
        await drain(stack, redis, claims_gone=False)
        stack.wait_replica_caught_up()
        print(f"replica holds {seeded['ok']:,} more transactions; measuring with an empty buffer")
        result["empty"] = await reads(client, redis, keys, pid, replica_units(stack), args.samples)
        result["rss_empty_mib"] = round(rss_mib(pid), 1)
        print(f"empty buffer: {json.dumps(result['empty'])}", flush=True)
        before = await used_memory(redis)
        filled = await fill(url, token, args.transactions, CONCURRENCY)
        result["fill"] = filled
        buffered = await used_memory(redis)
        print(f"buffered {filled['ok']:,} in {filled['elapsed_s']} s ({filled['errors']} errors)")
        result["buffered"] = await reads(
            client,
            redis,
            keys,
            pid,
            await some_pks(redis, keys, "executed_obs_units", 200),
            args.samples,
        )
        result["rss_buffered_mib"] = round(rss_mib(pid), 1)
        result["buffered_bytes_per_tx"] = (buffered - before) / max(1, filled["ok"])
        print(f"buffered: {json.dumps(result['buffered'])}", flush=True)
        print(
            f"Redis bytes per buffered transaction {result['buffered_bytes_per_tx']:.0f},"
            f" gateway RSS {result['rss_buffered_mib']} MiB",
            flush=True,
        )
        result["drain_s"] = round(await drain(stack, redis, claims_gone=True), 1)
        settled = await used_memory(redis)
        result["retained_bytes_per_tx"] = (
            math.nan if math.isnan(result["drain_s"]) else (settled - before) / max(1, filled["ok"])
        )
        result["memory"] = {"before": before, "buffered": buffered, "settled": settled}
        result["visible_buckets"] = await bucket_encodings(redis, keys)
        print(f"visible statuses kept in buckets: {result['visible_buckets']}", flush=True)
    finally:
        await client.aclose()
        await redis.aclose()
    return result


def rows(m: dict[str, Any]) -> list[Row]:
    def get(*path: str) -> float:
        node: Any = m
        for part in path:
            if not isinstance(node, dict) or part not in node:
                return math.nan
            node = node[part]
        return float(node)

    n = f"{m['transactions']:,}"
    list_ratio = get("buffered", "list", "p99_ms") / get("empty", "list", "p99_ms")
    return [
        Row("list_empty_p99", "list page of 50 by parent, empty buffer, p99",
            get("empty", "list", "p99_ms"), "ms",
            note=f"gateway CPU {get('empty', 'list', 'gateway_cpu_ms'):.1f} ms per read"),
        Row("list_p99", f"list page of 50 by parent, {n} buffered, p99",
            get("buffered", "list", "p99_ms"), "ms", GOAL_LIST_P99_MS,
            note=f"p50 {get('buffered', 'list', 'p50_ms'):.1f} ms; gateway CPU"
            f" {get('buffered', 'list', 'gateway_cpu_ms'):.1f} ms per read"),
        Row("list_vs_empty", "list p99 buffered / empty", list_ratio, "x", GOAL_LIST_VS_EMPTY),
        Row("files_empty_p99", "files of a unit, page of 50, empty buffer, p99",
            get("empty", "files", "p99_ms"), "ms"),
        Row("files_p99", f"files of a buffered unit, page of 50, {n} buffered, p99",
            get("buffered", "files", "p99_ms"), "ms", GOAL_LIST_P99_MS),
        Row("get_empty_p99", "get-by-id, empty buffer, p99", get("empty", "get", "p99_ms"), "ms"),
        Row("get_p99", f"get-by-id of a buffered record, {n} buffered, p99",
            get("buffered", "get", "p99_ms"), "ms", GOAL_GET_P99_MS),
        Row("buffered_bytes", "Redis memory per buffered transaction",
            get("buffered_bytes_per_tx"), "B", GOAL_BUFFERED_BYTES),
        Row("retained_bytes", "Redis memory kept per settled transaction",
            get("retained_bytes_per_tx"), "B", GOAL_RETAINED_BYTES,
            note="applied, visible, claims expired; status kept for the status window"),
        Row("rss", f"gateway RSS with {n} buffered", get("rss_buffered_mib"), "MiB",
            note=f"{get('rss_empty_mib'):.0f} MiB with the buffer empty"),
        Row("drain_s", f"drain of the {n} (replica on loopback)", get("drain_s"), "s"),
    ]  # fmt: skip


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n\n")[0])
    parser.add_argument("--transactions", type=int, default=TRANSACTIONS)
    parser.add_argument("--replica", type=int, default=REPLICA_TRANSACTIONS)
    parser.add_argument("--samples", type=int, default=SAMPLES)
    parser.add_argument("--out", type=Path, default=RESULTS_FILE)
    args = parser.parse_args(argv)
    stack = Stack(StackConfig(gateways=False, processor="none", wan_delay_ms=0))
    started = time.monotonic()
    try:
        stack.up()
        token = issue_operator_token(stack)
        stack.wait_replica_caught_up()
        url = stack.start_gateway(SITE, secondary=True)
        measured = asyncio.run(measure(stack, url, token, args))
    finally:
        stack.down()
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(measured, indent=2, default=str) + "\n")
    print(
        table(
            rows(measured),
            f"Reads and memory with {measured['transactions']:,} buffered"
            f" ({time.monotonic() - started:.0f} s)",
        )
    )


if __name__ == "__main__":
    main()
