"""Phases 1 to 4 of ``bench.run``: buffered writes at a secondary gateway, the floor (a bare
app with one ``XADD``), direct-to-main writes over the WAN, and commit-to-visible."""

from __future__ import annotations

from typing import Any

import orjson

from bench.load import Target, open_loop
from bench.rig import Bench
from bench.run_config import (
    BARE,
    BARE_STREAM,
    DIRECT,
    SITE_BUFFERED,
    SITE_VISIBLE,
    START_BODY,
    START_PATH,
)


async def buffered(bench: Bench) -> dict[str, Any]:
    bench.clock.say("phase 1: buffered writes at the secondary gateway (processor running)")
    url = bench.start_gateway(SITE_BUFFERED, with_processor=True)
    results: dict[str, Any] = {"site": SITE_BUFFERED}
    try:
        target = bench.target(url)
        await bench.warm_up(target)
        await bench.wait_settled(SITE_BUFFERED)
        await bench.open_and_closed(SITE_BUFFERED, target, results)
        results["replayed_after_closed_loop_s"] = round(await bench.wait_settled(SITE_BUFFERED), 3)
        bench.clock.say(
            f"  its processor finished replaying {results['replayed_after_closed_loop_s']}s"
            " after the closed loop"
        )
    finally:
        bench.stop(SITE_BUFFERED)
    return results


async def bare(bench: Bench) -> dict[str, Any]:
    bench.clock.say("phase 2: floor, bare FastAPI + one XADD to the same Redis")
    url = bench.start_bare()
    results: dict[str, Any] = {}
    try:
        target = Target(url, START_PATH, None, START_BODY)
        await bench.warm_up(target)
        await bench.open_and_closed(BARE, target, results)
    finally:
        bench.stop(BARE)
        await bench.redis.delete(BARE_STREAM)
    return results


async def direct(bench: Bench) -> dict[str, Any]:
    cfg = bench.config
    bench.clock.say("phase 3: direct writes from a MAIN-type gateway to main over the WAN")
    name = DIRECT
    url = bench.start_direct_gateway()
    results: dict[str, Any] = {}
    try:
        target = bench.target(url)
        # Opens the pool's connections through the WAN before anything is measured.
        await bench.warm_up(target, concurrency=cfg.direct_concurrency)
        await bench.open_and_closed(name, target, results, direct=True)
    finally:
        bench.stop(name)
    return results


async def visible(bench: Bench) -> dict[str, Any]:
    cfg = bench.config
    bench.clock.say("phase 4: commit-to-visible (replica on loopback)")
    url = bench.start_gateway(SITE_VISIBLE, with_processor=True)
    results: dict[str, Any] = {"site": SITE_VISIBLE}
    try:
        target = bench.target(url)
        await bench.warm_up(target, concurrency=2)
        await bench.wait_settled(SITE_VISIBLE)
        run, results["load"] = await bench.measured(
            SITE_VISIBLE,
            open_loop(
                target,
                rate_per_s=cfg.visible_rate_per_s,
                duration_s=cfg.visible_transactions / cfg.visible_rate_per_s,
                keep_bodies=True,
                client_kind=cfg.client,
            ),
        )
        await bench.wait_settled(SITE_VISIBLE)
        tx_ids = [orjson.loads(body)["tx_id"] for body in run.bodies]
        results.update(await bench.commit_to_visible(url, tx_ids))
    finally:
        bench.stop(SITE_VISIBLE)
    bench.clock.say(
        f"  {results['visible']}/{len(tx_ids)} visible; visible_at - applied_at"
        f" p50 {results['applied_to_visible_ms']['p50']} ms,"
        f" p99 {results['applied_to_visible_ms']['p99']} ms"
    )
    return results
