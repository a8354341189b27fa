"""Bounded memory at a site: ``python -m bench.retention`` (``make bench-retention``).

One local stack (main PostgreSQL, a streaming replica, Redis with AOF, no WAN delay: this is
about what Redis keeps, not how fast the link is). 100,000 transactions are buffered through a
secondary gateway's HTTP API with no processor running, as during a WAN outage (pairs of an
executed-obs-unit start and a raw data file in it, 32 clients); then the site's worker (the
production ``SiteWorker.run``: processor and tracker) drains them. Redis's ``used_memory``
(INFO memory) is read before, with the whole backlog buffered, once everything is applied and
visible (status hashes and unique-value claims still kept), and once those have expired and
the processor's retention sweep has run. Statuses are kept 60 s here (``tx_status_ttl_s``; a
week by default) so the run ends.

Target: after expiry and the sweep, Redis holds at most 1 MB more than before (what is left
does not grow with the number of transactions: 0.65 MB after 5,000 in the CI test). Prints
the figures and "meets" or "misses"; never fails on them.
"""

from __future__ import annotations

import argparse
import asyncio
import time
from typing import Any

from redis.asyncio import Redis

from bench.fill import fill
from bench.report import Goal, Row, table
from bench.tokens import issue_operator_token
from ccat_api.buffering.keys import SiteKeys
from ccat_api.buffering.tracker import UNIQUE_CLAIM_GRACE_MS
from ccat_api.config import Settings
from ccat_api.devstack.stack import Stack, StackConfig
from ccat_api.runtime import build_worker, make_redis

SITE = "bench-retention"
TRANSACTIONS = 100_000
CONCURRENCY = 32
STATUS_TTL_S = 60
GOAL_KEPT_MB = Goal("<=", 1.0)
SAMPLE_INTERVAL_S = 0.5
# What a site with nothing pending keeps (counters, lease, heartbeat, history, ...).
EXPIRED_KEYS_LEFT = 20


async def used_memory(redis: Redis) -> int:
    return int((await redis.info("memory"))["used_memory"])


async def site_key_count(redis: Redis, keys: SiteKeys) -> int:
    return len([k async for k in redis.scan_iter(match=f"{keys.prefix}:*", count=10_000)])


async def measure(stack: Stack, url: str, token: str, count: int) -> dict[str, Any]:
    settings = Settings.model_validate(
        {**stack.settings_overrides(SITE), "tx_status_ttl_s": STATUS_TTL_S}
    )
    keys = SiteKeys(SITE)
    redis = make_redis(stack.redis.url)
    worker = build_worker(settings, redis)
    stop = asyncio.Event()
    try:
        before = await used_memory(redis)
        filled = await fill(url, token, count, CONCURRENCY)
        print(f"buffered {filled['ok']:,} in {filled['elapsed_s']} s ({filled['errors']} errors)")
        peak = await used_memory(redis)
        started = time.monotonic()
        running = asyncio.create_task(worker.run(stop))
        while True:
            if await worker.processor.backlog() == (0, 0):
                break
            await asyncio.sleep(SAMPLE_INTERVAL_S)
        settled_s = time.monotonic() - started
        dead = int(await redis.zcard(keys.dead))
        settled = await used_memory(redis)
        settled_keys = await site_key_count(redis, keys)
        print(f"drained and visible in {settled_s:.1f} s; {settled_keys:,} keys kept")
        # Statuses expire after STATUS_TTL_S, unique claims after their grace; Redis's active
        # expiry then takes a moment for a hundred thousand keys.
        wait_s = max(STATUS_TTL_S, UNIQUE_CLAIM_GRACE_MS / 1000) + 5
        deadline = time.monotonic() + wait_s + 60
        await asyncio.sleep(wait_s)
        while time.monotonic() < deadline:
            if await site_key_count(redis, keys) <= EXPIRED_KEYS_LEFT:
                break
            await asyncio.sleep(1)
        stop.set()
        await running
        sweep = await worker.processor.upkeep.report_watermark(force=True)
        assert sweep is not None
        after = await used_memory(redis)
        after_keys = await site_key_count(redis, keys)
    finally:
        stop.set()
        await worker.processor.close()
        await worker.tracker.close()
        await redis.aclose()
    return {
        "transactions": filled["ok"],
        "dead_letters": dead,
        "drain_s": settled_s,
        "before": before,
        "peak": peak,
        "settled": settled,
        "after": after,
        "settled_keys": settled_keys,
        "after_keys": after_keys,
        "watermark": sweep.watermark,
        "recent_trimmed": sweep.recent_trimmed,
    }


def rows(m: dict[str, Any]) -> list[Row]:
    growth = m["peak"] - m["before"]
    kept = m["after"] - m["before"]
    mb = 1024 * 1024
    return [
        Row("transactions", "transactions through the site", m["transactions"], ""),
        Row("dead", "dead letters", m["dead_letters"], ""),
        Row("drain", "drained and visible", m["drain_s"], "s"),
        Row("before", "used_memory before", m["before"] / mb, "MB"),
        Row("peak", "used_memory with all buffered", m["peak"] / mb, "MB"),
        Row("settled", "used_memory applied and visible", m["settled"] / mb, "MB",
            note=f"{m['settled_keys']:,} keys: statuses and claims not yet expired"),
        Row("after", "used_memory after expiry and sweep", m["after"] / mb, "MB",
            note=f"{m['after_keys']} keys; watermark {m['watermark']:,};"
            f" {m['recent_trimmed']:,} expired ids and buckets dropped from recent and visible"),
        Row("kept", "kept after settling", kept / mb, "MB", GOAL_KEPT_MB,
            note=f"{100 * kept / growth:.2f}% of the {growth / mb:.1f} MB the backlog took"),
    ]  # fmt: skip


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--transactions", type=int, default=TRANSACTIONS)
    args = parser.parse_args(argv)
    stack = Stack(StackConfig(gateways=False, processor="none", wan_delay_ms=0))
    try:
        stack.up()
        token = issue_operator_token(stack)
        stack.wait_replica_caught_up()
        url = stack.start_gateway(
            SITE,
            secondary=True,
            settings={"tx_status_ttl_s": STATUS_TTL_S},
        )
        measured = asyncio.run(measure(stack, url, token, args.transactions))
    finally:
        stack.down()
    print(table(rows(measured), f"Site Redis memory, {measured['transactions']:,} transactions"))


if __name__ == "__main__":
    main()
