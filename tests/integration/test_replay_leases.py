"""Only the lease holder replays on main: a successor takes over an expired lease, and a
deposed or paused processor is fenced off."""

from __future__ import annotations

import asyncio
import uuid

import pytest

from ccat_api.config import Settings
from ccat_api.devstack.stack import Stack
from ccat_api.runtime import build_worker, make_redis
from tests.integration.conftest import Tokens
from tests.support import client, serve, start_eou


async def test_only_the_lease_holder_replays_and_a_successor_takes_over(
    tokens: Tokens, secondary_settings: Settings
) -> None:
    settings = secondary_settings.model_copy(update={"processor_lease_ttl_s": 0.5})
    redis = make_redis(settings.redis_url)
    first, second = build_worker(settings, redis), build_worker(settings, redis)
    async with serve(settings) as url, client(url, tokens.operator) as http:
        await start_eou(http)
        assert await first.processor.run_once() == 1
        await start_eou(http)
        assert await second.processor.run_once() == 0  # standing by
        await asyncio.sleep(0.8)  # first stops renewing: its lease expires
        assert await second.processor.run_once() == 1
        # The deposed processor's epoch is refused by main even if it thinks it may go on.
        await start_eou(http)
        stale_epoch = first.lease.epoch
        assert stale_epoch is not None
        assert stale_epoch < (second.lease.epoch or 0)
    for w in (first, second):
        await w.processor.close()
    await redis.aclose()


async def test_deposed_processor_is_fenced_off_on_main(
    stack: Stack, tokens: Tokens, secondary_settings: Settings
) -> None:
    from ccat_api.buffering.envelope import BufferedTransaction, Envelope
    from ccat_api.buffering.executor import BatchExecutor, LeaseSuperseded
    from ccat_api.runtime import plain_dsn

    async with serve(secondary_settings) as url, client(url, tokens.operator) as http:
        await start_eou(http)
    redis = make_redis(secondary_settings.redis_url)
    worker = build_worker(secondary_settings, redis)
    assert await worker.processor.run_once() == 1  # fence now holds the current epoch
    current = worker.lease.epoch
    assert current is not None
    executor = BatchExecutor(
        plain_dsn(stack.main_db.url()), secondary_settings.site_name,
        timeout_s=5, connect_timeout_s=5, statement_timeout_s=5,
    )  # fmt: skip
    from ccat_api.buffering.envelope import Op, Principal, Step

    envelope = Envelope(
        tx_id=str(uuid.uuid4()), site=secondary_settings.site_name,
        principal=Principal(None, "stale", "operator"), created_at="2026-01-01T00:00:00+00:00",
        steps=(Step(Op.UPDATE, "executed_obs_units", str(uuid.uuid4()), {"status": "failed"}),),
    )  # fmt: skip
    with pytest.raises(LeaseSuperseded):
        await executor.apply([BufferedTransaction(envelope, seq=1, deps=())], current - 1)
    await executor.close()
    await worker.processor.close()
    await redis.aclose()


async def test_a_paused_processor_whose_lease_was_taken_does_not_replay(
    tokens: Tokens, secondary_settings: Settings
) -> None:
    from ccat_api.buffering.keys import SiteKeys

    settings = secondary_settings.model_copy(update={"processor_lease_ttl_s": 30.0})
    redis = make_redis(settings.redis_url)
    first, second = build_worker(settings, redis), build_worker(settings, redis)
    async with serve(settings) as url, client(url, tokens.operator) as http:
        assert await first.processor.run_once() == 0  # takes the lease
        # First "pauses" past its lease; second takes over (the key expired meanwhile).
        await redis.delete(SiteKeys(settings.site_name).lease)
        assert await second.processor.run_once() == 0
        await start_eou(http)
        # Well within first's renewal interval, it still must notice it lost the lease.
        assert await first.processor.run_once() == 0
        assert await second.processor.run_once() == 1
    for w in (first, second):
        await w.processor.close()
    await redis.aclose()
