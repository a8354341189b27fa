"""A connection to Redis dropped after accept.lua ran but before its reply reached the gateway:
the Redis client sends the call again, and the write is still one transaction, with and without
an Idempotency-Key. A real TCP proxy between the gateway and Redis drops the reply."""

from __future__ import annotations

import pytest

from ccat_api.buffering.keys import SiteKeys
from ccat_api.buffering.worker import SiteWorker
from ccat_api.config import Settings
from ccat_api.devstack.stack import Stack
from ccat_api.runtime import make_redis
from tests.integration.conftest import Tokens
from tests.lossy_proxy import LossyProxy
from tests.support import buffer_state, client, fetchval, ok, serve, settle


@pytest.mark.parametrize("idempotency_key", [None, "start-after-a-dropped-reply"])
async def test_an_accept_whose_reply_was_lost_is_one_transaction(
    stack: Stack,
    tokens: Tokens,
    secondary_settings: Settings,
    worker: SiteWorker,
    idempotency_key: str | None,
) -> None:
    site = secondary_settings.site_name
    headers = {"Idempotency-Key": idempotency_key} if idempotency_key else {}
    # The first script call (the accept: warming up loads scripts, it calls none) is cut.
    async with LossyProxy("127.0.0.1", stack.redis.port, cut_after=b"EVALSHA") as proxy:
        through_proxy = secondary_settings.model_copy(
            update={"redis_url": stack.redis.acl.url("gateway", proxy.port)}
        )
        async with serve(through_proxy) as url, client(url, tokens.operator) as http:
            answer = ok(
                await http.post(
                    "/executed_obs_units/start", json={"obs_unit_id": 1}, headers=headers
                ),
                201,
            )
            assert proxy.cuts == 1  # the script ran, its reply never came, the client resent it
    assert (await buffer_state(secondary_settings.redis_url, site))["stream"] == 1
    redis = make_redis(secondary_settings.redis_url)
    try:
        assert int(await redis.hget(SiteKeys(site).stats, "accepted") or 0) == 1
        assert int(await redis.get(SiteKeys(site).seq) or 0) == 1
        assert await redis.hget(SiteKeys(site).tx(answer["tx_id"]), "state") == b"buffered"
    finally:
        await redis.aclose()

    await settle(stack, worker)
    applied = await fetchval(
        stack.main_db.dsn(), "SELECT count(*) FROM applied_transactions WHERE site = $1", site
    )
    assert applied == 1
    rows = await fetchval(
        stack.main_db.dsn(),
        "SELECT count(*) FROM executed_obs_units WHERE id = $1::uuid",
        answer["id"],
    )
    assert rows == 1
    state = await buffer_state(secondary_settings.redis_url, site)
    assert state == {**state, "stream": 0, "dead": 0, "overlay": 0}
