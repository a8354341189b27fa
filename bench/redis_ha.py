"""The cost of the stronger promise, and how long a site's buffer is away when its Redis
primary dies.

A stack whose site buffer is a Redis primary, two replicas and three Sentinels. Two gateways
of the same site share it: one answers a critical write after the primary's fsync alone
(``buffer_min_replicas=0``, the single-Redis promise), the other also waits for one replica
(Redis WAIT, the default with Sentinels). Both take the same open-loop load, one after the
other, so the difference is WAIT's. Then the primary is SIGKILLed and writes are tried every
20 ms: the figure is the time from its death to the first accepted write (two replicas, so the
promoted one still has a replica to confirm to).

    python -m bench.redis_ha [--rate 200] [--duration-s 20]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import time
from typing import Any

import httpx

from bench.load import Target, open_loop
from bench.report import Goal, Row, table
from bench.tokens import issue_operator_token
from ccat_api.devstack.stack import Stack, StackConfig

START_BODY = json.dumps({"obs_unit_id": 1}).encode()
P99_TARGET_MS = 10.0
WARM_UP_S = 5.0


async def write_latency(url: str, token: str, rate: float, duration_s: float) -> dict[str, Any]:
    target = Target(url, "/executed_obs_units/start", token=token, body=START_BODY)
    result = await open_loop(target, rate_per_s=rate, duration_s=duration_s)
    return {
        "p50_ms": result.percentile_ms(50),
        "p99_ms": result.percentile_ms(99),
        "ok": result.ok,
        "errors": result.errors,
    }


async def failover_gap(stack: Stack, url: str, token: str) -> dict[str, float]:
    assert stack.redis_set is not None
    headers = {"Authorization": f"Bearer {token}"}
    async with httpx.AsyncClient(base_url=url, headers=headers, timeout=5) as http:
        old = stack.redis_set.primary_port()
        killed_at = time.monotonic()
        stack.redis_set.kill_primary()
        first_refusal = None
        last = "no answer"
        while time.monotonic() - killed_at < 60:
            try:
                r = await http.post("/executed_obs_units/start", json={"obs_unit_id": 1})
                if r.status_code == 201:
                    accepted = time.monotonic() - killed_at
                    break
                first_refusal = first_refusal or time.monotonic() - killed_at
                last = f"{r.status_code} {r.text[:300]}"
            except httpx.TransportError as exc:
                last = repr(exc)
            await asyncio.sleep(0.02)
        else:
            raise TimeoutError(f"no write accepted within 60 s of the primary's death: {last}")
        promoted = await asyncio.to_thread(stack.redis_set.wait_primary_known)
    assert promoted != old
    return {"accepted_after_s": accepted, "refused_first_after_s": first_refusal or 0.0}


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--rate", type=float, default=200.0)
    parser.add_argument("--duration-s", type=float, default=20.0)
    args = parser.parse_args(argv)
    stack = Stack(StackConfig(gateways=False, processor="none", redis_replicas=2))
    try:
        stack.up(print)
        token = issue_operator_token(stack)
        stack.wait_replica_caught_up()
        single = stack.start_gateway(
            "bench-ha", secondary=True, settings={"buffer_min_replicas": 0}
        )
        waiting = stack.start_gateway("bench-ha-wait", secondary=True)
        # A fresh gateway's first requests pay for connections and warm caches: not the
        # figure asked for, so each gateway takes a few seconds of the same load first.
        for url in (single, waiting):
            asyncio.run(write_latency(url, token, args.rate, WARM_UP_S))
        alone = asyncio.run(write_latency(single, token, args.rate, args.duration_s))
        confirmed = asyncio.run(write_latency(waiting, token, args.rate, args.duration_s))
        gap = asyncio.run(failover_gap(stack, waiting, token))
    finally:
        stack.down()
    rows = [
        Row(
            "single_p50", "buffered write p50, fsync only (no replica wait)", alone["p50_ms"], "ms"
        ),
        Row("single_p99", "buffered write p99, fsync only", alone["p99_ms"], "ms"),
        Row("wait_p50", "buffered write p50, fsync + WAIT 1 replica", confirmed["p50_ms"], "ms"),
        Row(
            "wait_p99",
            "buffered write p99, fsync + WAIT 1 replica",
            confirmed["p99_ms"],
            "ms",
            Goal("<=", P99_TARGET_MS),
        ),
        Row("wait_cost", "p99 with WAIT / p99 without", confirmed["p99_ms"] / alone["p99_ms"], "x"),
        Row(
            "failover_s", "primary SIGKILLed -> first accepted write", gap["accepted_after_s"], "s"
        ),
    ]
    print(table(rows, f"Redis with Sentinel, {args.rate:.0f} writes/s for {args.duration_s:.0f} s"))
    print(json.dumps({"single": alone, "wait": confirmed, "failover": gap}))


if __name__ == "__main__":
    main()
