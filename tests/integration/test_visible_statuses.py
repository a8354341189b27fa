"""A visible transaction's status is folded into its second's bucket (``lua/status.lua``):
read back, listed and resent, it answers as the status hash did."""

from __future__ import annotations

import time
import uuid
from dataclasses import replace
from datetime import UTC, datetime
from typing import Any

from ccat_api.buffering.buffer import Accepted, WriteBuffer
from ccat_api.buffering.builder import TransactionBuilder
from ccat_api.buffering.envelope import Envelope, Principal
from ccat_api.buffering.idempotency import Answer
from ccat_api.buffering.keys import SiteKeys
from ccat_api.buffering.ledger import TransactionLedger
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


def _uuid7_at(ms: int) -> str:
    """A UUIDv7 made at ``ms`` (its first 48 bits), random otherwise."""
    rest = uuid.uuid4().hex
    return str(uuid.UUID(hex=f"{ms:012x}7{rest[13:16]}8{rest[17:32]}"))


def _unit_start(site: str, tx_id: str | None = None) -> Envelope:
    builder = TransactionBuilder(site, Principal(None, "test", "operator"))
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
    return replace(envelope, tx_id=tx_id) if tx_id else envelope


async def test_statuses_in_many_buckets_list_in_pages_newest_first(
    stack: Stack, secondary_settings: Settings, worker: SiteWorker
) -> None:
    """One status a second over 40 seconds: a page reads buckets a few at a time, more each
    round, and pages put together are every status once, by seq."""
    site = secondary_settings.site_name
    keys = SiteKeys(site)
    redis = make_redis(secondary_settings.redis_url)
    buffer = WriteBuffer(redis, keys, idempotency_ttl_s=60)
    ledger = TransactionLedger(redis, keys, status_ttl_s=60)
    now_ms = int(time.time() * 1000)
    made = [_unit_start(site, _uuid7_at(now_ms - 40_000 + 1000 * i)) for i in range(40)]
    for envelope in made:
        assert isinstance(await buffer.accept(envelope, Answer(201, {})), Accepted)
    await settle(stack, worker)
    assert len({keys.visible_bucket(e.tx_id) for e in made}) == 40
    newest_first = [e.tx_id for e in reversed(made)]

    for state in ("visible", None):
        listed: list[str] = []
        for offset in range(0, 45, 7):
            page, total = await ledger.recent(state, limit=7, offset=offset)
            assert total == 40
            listed += [s.tx_id for s in page]
        assert listed == newest_first, state
    assert [s and s.seq for s in await ledger.many(newest_first)] == list(range(40, 0, -1))
    await redis.aclose()


async def test_an_accept_resent_after_its_transaction_became_visible_is_not_buffered_again(
    stack: Stack, secondary_settings: Settings, worker: SiteWorker
) -> None:
    """The Redis client resends a call whose reply was lost (test_dropped_reply.py); by the
    time it does, the transaction may be visible already, its status hash folded away."""
    keys = SiteKeys(secondary_settings.site_name)
    redis = make_redis(secondary_settings.redis_url)
    buffer = WriteBuffer(redis, keys, idempotency_ttl_s=60)
    envelope = _unit_start(secondary_settings.site_name)
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
