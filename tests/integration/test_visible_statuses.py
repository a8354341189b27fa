"""A visible transaction's status is folded into its second's bucket (``lua/status.lua``):
read back, listed and resent, it answers as the status hash did."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from ccat_api.buffering.buffer import Accepted, WriteBuffer
from ccat_api.buffering.builder import TransactionBuilder
from ccat_api.buffering.envelope import Principal
from ccat_api.buffering.idempotency import Answer
from ccat_api.buffering.keys import SiteKeys
from ccat_api.buffering.worker import SiteWorker
from ccat_api.config import Settings
from ccat_api.devstack.stack import Stack
from ccat_api.runtime import make_redis
from tests.integration.conftest import Tokens
from tests.support import client, ok, serve, settle

# What a status says that does not change when it becomes visible.
KEPT = ("tx_id", "seq", "created_at", "depends_on", "records", "attempts")


async def test_a_visible_status_reads_and_lists_as_before(
    stack: Stack, tokens: Tokens, secondary_settings: Settings, worker: SiteWorker
) -> None:
    keys = SiteKeys(secondary_settings.site_name)
    redis = make_redis(secondary_settings.redis_url)
    async with serve(secondary_settings) as url, client(url, tokens.operator) as http:

        async def status(tx_id: str) -> dict[str, Any]:
            return dict(ok(await http.get(f"/transactions/{tx_id}")))

        async def listed(**params: str) -> tuple[list[str], int]:
            page = ok(await http.get("/transactions", params={"limit": "100", **params}))
            return [item["tx_id"] for item in page["items"]], page["total"]

        start = ok(await http.post("/executed_obs_units/start", json={"obs_unit_id": 1}), 201)
        finish = ok(await http.put(f"/executed_obs_units/{start['id']}/finish", json={}))
        buffered = {tx["tx_id"]: await status(tx["tx_id"]) for tx in (start, finish)}
        assert buffered[finish["tx_id"]]["depends_on"] == [start["tx_id"]]

        await settle(stack, worker)
        for tx_id, before in buffered.items():
            after = await status(tx_id)
            assert after["state"] == "visible"
            assert {k: after[k] for k in KEPT} == {k: before[k] for k in KEPT}
            assert after["lsn"] is not None
            assert before["created_at"] <= after["applied_at"] <= after["visible_at"]
            # Folded: no hash of its own and out of the recent index, one field of a bucket.
            assert not await redis.exists(keys.tx(tx_id))
            assert await redis.zscore(keys.recent, tx_id) is None
            assert await redis.hexists(keys.visible_bucket(tx_id), tx_id)

        newest_first = [finish["tx_id"], start["tx_id"]]
        assert await listed(state="visible") == (newest_first, 2)
        assert await listed() == (newest_first, 2)
        # Everything not yet visible comes from the recent index, merged by seq.
        worker_less = ok(await http.post("/executed_obs_units/start", json={"obs_unit_id": 1}), 201)
        assert await listed() == ([worker_less["tx_id"], *newest_first], 3)
        assert await listed(state="visible", offset="1") == (newest_first[1:], 2)
        assert await listed(state="buffered") == ([worker_less["tx_id"]], 1)
    await redis.aclose()


async def test_an_accept_resent_after_its_transaction_became_visible_is_not_buffered_again(
    stack: Stack, secondary_settings: Settings, worker: SiteWorker
) -> None:
    """The Redis client resends a call whose reply was lost (test_dropped_reply.py); by the
    time it does, the transaction may be visible already, its status hash folded away."""
    keys = SiteKeys(secondary_settings.site_name)
    redis = make_redis(secondary_settings.redis_url)
    buffer = WriteBuffer(redis, keys, idempotency_ttl_s=60)
    builder = TransactionBuilder(secondary_settings.site_name, Principal(None, "test", "operator"))
    builder.insert(
        "executed_obs_units",
        {
            "obs_unit_id": 1,
            "site_id": 1,
            "status": "running",
            "start_time": datetime.now(UTC),
            "conditions": {},
            "created_by": "test",
        },
    )
    envelope = builder.build()
    first = await buffer.accept(envelope, Answer(201, {}))
    assert isinstance(first, Accepted)
    await settle(stack, worker)
    assert not await redis.exists(keys.tx(envelope.tx_id))

    again = await buffer.accept(envelope, Answer(201, {}))
    assert isinstance(again, Accepted)
    assert (again.seq, again.deps) == (first.seq, first.deps)
    assert int(await redis.get(keys.seq) or 0) == first.seq
    assert await redis.xlen(keys.stream) == 0
    assert not await redis.exists(keys.tx(envelope.tx_id))
    await redis.aclose()
