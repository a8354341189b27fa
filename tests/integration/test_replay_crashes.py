"""Replay on main applies each transaction exactly once through crashes: the processor killed
between commit and acknowledgement or at random moments, Redis killed with a backlog, a
gateway killed after answering."""

from __future__ import annotations

import asyncio
import functools
import random
import signal
import uuid
from typing import Any

import httpx

from ccat_api.buffering.worker import SiteWorker
from ccat_api.config import Settings
from ccat_api.devstack.stack import Stack
from ccat_api.failpoints import CRASH_EXIT_CODE
from ccat_api.runtime import build_worker, make_redis
from tests.integration.backlog import applied_on_main, drain, post_file
from tests.integration.conftest import Tokens
from tests.support import buffer_state, client, eventually, fetchval, serve, start_eou


async def test_processor_killed_between_commit_and_ack_applies_each_transaction_once(
    stack: Stack, tokens: Tokens, secondary_settings: Settings, worker: SiteWorker
) -> None:
    site = secondary_settings.site_name
    async with serve(secondary_settings) as url, client(url, tokens.operator) as http:
        eou = await start_eou(http)
        for i in range(10):
            await post_file(http, eou["id"], f"{eou['id']}/{i}.fits")
    crashing = stack.start_processor(
        site,
        burst=True,
        env={"CCAT_FAILPOINTS": "after_commit", "CCAT_PROCESSOR_LEASE_TTL_S": "0.5"},
    )
    assert await asyncio.to_thread(crashing.wait, 60) == CRASH_EXIT_CODE
    await asyncio.sleep(0.7)  # the dead processor's lease runs out
    # Committed on main, but Redis never heard: the entries are still pending.
    assert await applied_on_main(stack, site) == 11
    assert (await buffer_state(secondary_settings.redis_url, site))["stream"] == 11

    assert await worker.processor.run_once() == 11
    assert await applied_on_main(stack, site) == 11
    state = await buffer_state(secondary_settings.redis_url, site)
    assert state["stream"] == 0
    assert state["dead"] == 0
    assert state["awaiting_replica"] == 11
    rows = await fetchval(
        stack.main_db.dsn(),
        "SELECT count(*) FROM raw_data_files WHERE executed_obs_unit_id = $1::uuid",
        eou["id"],
    )
    assert rows == 10


async def test_processor_killed_at_random_moments_loses_and_repeats_nothing(
    stack: Stack, tokens: Tokens, secondary_settings: Settings, worker: SiteWorker
) -> None:
    site = secondary_settings.site_name
    count = 300
    async with serve(secondary_settings) as url, client(url, tokens.operator) as http:
        eou = await start_eou(http)
        for i in range(count - 1):
            await post_file(http, eou["id"], f"{eou['id']}/{i:04d}.fits")
    # Small batches over a slow link so kills land mid-batch as well as between batches.
    stack.wan.set_delay(20)
    env = {"CCAT_PROCESSOR_BATCH_SIZE": "5", "CCAT_PROCESSOR_LEASE_TTL_S": "0.5"}
    rng = random.Random(20261122)
    kills_mid_drain = 0

    async def stream_length() -> int:
        return (await buffer_state(secondary_settings.redis_url, site))["stream"]

    for _ in range(8):
        remaining = await stream_length()
        victim = stack.start_processor(site, env=env)
        # Kill it once it is working: at a random moment within its next batch or two.
        await eventually(
            functools.partial(_below, stream_length, remaining), timeout_s=30, interval_s=0.01
        )
        await asyncio.sleep(rng.uniform(0, 0.12))
        assert victim.process is not None
        victim.process.send_signal(signal.SIGKILL)
        victim.wait(10)
        if await stream_length() > 0:
            kills_mid_drain += 1
        await asyncio.sleep(0.6)  # the dead processor's lease expires
    stack.wan.set_delay(0)
    await drain(worker, stack)
    assert kills_mid_drain == 8
    assert await applied_on_main(stack, site) == count
    state = await buffer_state(secondary_settings.redis_url, site)
    assert state == {**state, "stream": 0, "dead": 0, "overlay": 0, "awaiting_replica": 0}
    assert (
        await fetchval(
            stack.main_db.dsn(),
            "SELECT count(*) FROM raw_data_files WHERE executed_obs_unit_id = $1::uuid",
            eou["id"],
        )
        == count - 1
    )


async def _below(length: Any, than: int) -> bool:
    return bool(await length() < than)


async def test_redis_killed_with_a_backlog_loses_nothing(
    stack: Stack, tokens: Tokens, secondary_settings: Settings
) -> None:
    site = secondary_settings.site_name
    async with serve(secondary_settings) as url, client(url, tokens.operator) as http:
        eou = await start_eou(http)
        accepted = [await post_file(http, eou["id"], f"{eou['id']}/{i}.fits") for i in range(50)]
    await asyncio.to_thread(stack.redis.restart_after_kill)
    redis = make_redis(secondary_settings.redis_url)
    worker = build_worker(secondary_settings, redis)
    try:
        assert (await buffer_state(secondary_settings.redis_url, site))["stream"] == 51
        await drain(worker, stack)
    finally:
        await worker.processor.close()
        await worker.tracker.close()
        await redis.aclose()
    ids = [uuid.UUID(a["id"]) for a in accepted]
    found = await fetchval(
        stack.main_db.dsn(), "SELECT count(*) FROM raw_data_files WHERE id = ANY($1::uuid[])", ids
    )
    assert found == 50


async def test_gateway_killed_after_answering_loses_nothing(
    stack: Stack, tokens: Tokens, secondary_settings: Settings, worker: SiteWorker
) -> None:
    site = secondary_settings.site_name
    url = stack.start_gateway(site, secondary=True)
    try:
        async with client(url, tokens.operator) as http:
            await eventually(lambda: _health_ok(http))
            eou = await start_eou(http)
            files = [await post_file(http, eou["id"], f"{eou['id']}/{i}.fits") for i in range(20)]
    finally:
        stack.gateways.pop(site).kill()
    await drain(worker, stack)
    ids = [uuid.UUID(f["id"]) for f in files]
    assert (
        await fetchval(
            stack.main_db.dsn(),
            "SELECT count(*) FROM raw_data_files WHERE id = ANY($1::uuid[])",
            ids,
        )
        == 20
    )


async def _health_ok(http: httpx.AsyncClient) -> bool:
    try:
        return (await http.get("/health")).status_code == 200
    except httpx.TransportError:
        return False
