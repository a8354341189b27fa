"""Health, buffer statistics, transaction listings and dead-letter actions."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncGenerator
from typing import Any

import orjson
from redis.asyncio import Redis

from ccat_api.buffering.keys import SiteKeys
from ccat_api.buffering.worker import SiteWorker
from ccat_api.config import Settings
from ccat_api.devstack.stack import Stack
from tests.integration.conftest import Tokens
from tests.support import client, refused_on_main, serve


async def test_health_reports_every_dependency_and_the_buffer(
    stack: Stack, tokens: Tokens, secondary_settings: Settings, worker: SiteWorker
) -> None:
    async with serve(secondary_settings) as url, client(url) as anonymous:
        async with client(url, tokens.operator) as http:
            await http.post("/executed_obs_units/start", json={"obs_unit_id": 1})
        health = await anonymous.get("/health")
        assert health.status_code == 200
        report = health.json()
        assert report["redis"]["ok"] is True
        assert report["replica"]["ok"] is True
        assert report["replica"]["in_recovery"] is True
        assert "apply_lag_bytes" in report["replica"]
        assert report["buffer"]["depth"] == 1
        assert report["buffer"]["oldest_pending_age_s"] >= 0
        assert report["buffer"]["dead_letters"] == 0
        assert report["processor"] == {"state": "absent"}
        await worker.processor.run_once()
        report = (await anonymous.get("/health")).json()
        assert report["buffer"]["depth"] == 0
        assert report["buffer"]["awaiting_replica"] == 1
        assert report["processor"]["state"] == "idle"
        assert (await anonymous.get("/buffer-stats")).status_code == 401
        async with client(url, tokens.observer) as observer:
            stats = (await observer.get("/buffer-stats")).json()
            assert stats["awaiting_replica"] == 1
            info = (await observer.get("/api/site/info")).json()
            assert info == {
                **info,
                "site_type": "secondary",
                "site_name": secondary_settings.site_name,
            }


async def test_health_is_503_while_redis_is_down(
    stack: Stack, tokens: Tokens, secondary_settings: Settings
) -> None:
    async with serve(secondary_settings) as url, client(url, tokens.operator) as http:
        await asyncio.to_thread(stack.redis.kill)
        try:
            health = await http.get("/health")
            assert health.status_code == 503
            assert health.json()["redis"]["ok"] is False
            write = await http.post("/executed_obs_units/start", json={"obs_unit_id": 1})
            assert write.status_code == 503, write.text
            assert write.headers["Retry-After"]
        finally:
            await asyncio.to_thread(stack.redis.start)
        assert (await http.get("/health")).status_code == 200


async def test_dead_letter_actions_are_for_admins_only(
    stack: Stack, tokens: Tokens, secondary_settings: Settings
) -> None:
    async with serve(secondary_settings) as url, client(url, tokens.operator) as http:
        eou = (await http.post("/executed_obs_units/start", json={"obs_unit_id": 1})).json()
        for action in ("retry", "discard"):
            r = await http.post(f"/transactions/{eou['tx_id']}/{action}")
            assert r.status_code == 403, r.text
            assert "operate:buffer" in r.json()["detail"]
        async with client(url, tokens.admin) as admin:
            r = await admin.post(f"/transactions/{eou['tx_id']}/retry")
            assert r.status_code == 409  # buffered, not failed
            listed = (await admin.get("/transactions", params={"state": "buffered"})).json()
            assert [t["tx_id"] for t in listed["items"]] == [eou["tx_id"]]
            assert (
                await admin.get("/transactions/01930000-0000-7000-8000-000000000000")
            ).status_code == 404


async def test_discarded_dead_letter_leaves_the_dead_letter_list(
    stack: Stack, tokens: Tokens, secondary_settings: Settings, worker: SiteWorker
) -> None:
    async with serve(secondary_settings) as url, client(url, tokens.operator) as http:
        eou = (await http.post("/executed_obs_units/start", json={"obs_unit_id": 1})).json()
        with refused_on_main(stack, "executed_obs_units", f"id <> '{eou['id']}'::uuid"):
            assert await worker.processor.run_once() == 1
        async with client(url, tokens.admin) as admin:
            failed = (await admin.get("/transactions", params={"state": "failed"})).json()
            assert failed["total"] == 1
            assert (await admin.post(f"/transactions/{eou['tx_id']}/discard")).status_code == 204
            assert (await admin.get("/transactions", params={"state": "failed"})).json()[
                "total"
            ] == 0
            status = (await admin.get(f"/transactions/{eou['tx_id']}")).json()
            assert status["state"] == "discarded"
        assert (await http.get(f"/executed_obs_units/{eou['id']}")).status_code == 404


async def subscribe(redis: Redis, keys: SiteKeys) -> AsyncGenerator[dict[str, Any]]:
    """The site's events channel as the scripts publish it: one event, or a JSON array of a
    batch's events, per message."""
    pubsub = redis.pubsub()
    await pubsub.subscribe(keys.events)
    try:
        async for message in pubsub.listen():
            if message.get("type") == "message":
                decoded = orjson.loads(message["data"])
                for event in decoded if isinstance(decoded, list) else [decoded]:
                    yield event
    finally:
        await pubsub.unsubscribe(keys.events)
        await pubsub.aclose()  # type: ignore[no-untyped-call]


async def test_every_state_change_is_published_for_monitors(
    stack: Stack, tokens: Tokens, secondary_settings: Settings, worker: SiteWorker
) -> None:
    from ccat_api.runtime import make_redis

    redis = make_redis(secondary_settings.redis_url)
    events = subscribe(redis, SiteKeys(secondary_settings.site_name))
    received: list[dict[str, object]] = []

    async def listen() -> None:
        async for event in events:
            received.append(event)
            if event["state"] == "visible":
                return

    listener = asyncio.create_task(listen())
    await asyncio.sleep(0.2)  # subscribed before anything happens
    async with serve(secondary_settings) as url, client(url, tokens.operator) as http:
        tx = (await http.post("/executed_obs_units/start", json={"obs_unit_id": 1})).json()["tx_id"]
        await worker.processor.run_once()
        stack.wait_replica_caught_up()
        await worker.tracker.run_once()
    await asyncio.wait_for(listener, 10)
    await events.aclose()
    await redis.aclose()
    assert [(e["tx_id"], e["state"]) for e in received] == [
        (tx, "buffered"),
        (tx, "applied"),
        (tx, "visible"),
    ]
    assert int(str(received[1]["lsn"])) > 0


async def test_with_main_unreachable_the_site_accepts_valid_tokens_and_refuses_revoked_ones(
    stack: Stack, secondary_settings: Settings
) -> None:
    from ccat_api.auth.tokens import issue_service_token, revoke_token
    from ccat_api.db.engines import PrimaryDatabase, make_engine
    from ccat_api.db.models import Role

    db = PrimaryDatabase(
        make_engine(stack.main_db.url(), pool_size=1, connect_timeout_s=5, application_name="t")
    )
    valid = await issue_service_token(db, "still-valid", Role.OPERATOR.value)
    revoked = await issue_service_token(db, "soon-revoked", Role.OPERATOR.value)
    assert await revoke_token(db, revoked.token_id)
    await db.dispose()
    stack.wait_replica_caught_up()  # the revocation reached the site before the outage
    async with serve(secondary_settings) as url:
        stack.wan.down()  # main unreachable: the site authenticates from its replica
        async with client(url, valid.plaintext) as http:
            assert (await http.get("/obs_units")).status_code == 200
            write = await http.post("/executed_obs_units/start", json={"obs_unit_id": 1})
            assert write.status_code == 201
        async with client(url, revoked.plaintext) as http:
            refused = await http.get("/obs_units")
            assert refused.status_code == 401
            assert "revoked" in refused.json()["detail"]
