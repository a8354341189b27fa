"""Prometheus metrics that move with the buffer and the requests, what each figure says, and
what a scrape (and the status and buffer stream) says when Redis or the WAN is down."""

from __future__ import annotations

import asyncio
import re
from typing import Any

import pytest

from ccat_api.buffering.worker import SiteWorker
from ccat_api.config import Settings
from ccat_api.devstack.stack import Stack
from ccat_api.metrics import REPLAY_REGISTRY
from ccat_api.runtime import build_worker, make_redis
from tests.integration.conftest import Tokens
from tests.integration.exposition import metric, site_metric
from tests.integration.monitors import (
    WAIT_S,
    close_code,
    frame,
    frame_where,
    live_settings,
    monitor,
)
from tests.support import client, eventually, refused_on_main, serve


def replay_sample(name: str) -> float:
    """A processor histogram's sample as this process's in-process processors recorded it."""
    return REPLAY_REGISTRY.get_sample_value(name) or 0.0


async def test_metrics_move_with_the_buffer_and_the_requests(
    stack: Stack, tokens: Tokens, secondary_settings: Settings, worker: SiteWorker
) -> None:
    site = secondary_settings.site_name

    def value(text: str, name: str, labels: str = f'site="{site}"') -> float:
        found = re.search(rf"^{re.escape(name)}\{{{re.escape(labels)}\}} (\S+)$", text, re.M)
        assert found, f"{name}{{{labels}}} missing"
        return float(found.group(1))

    async with (
        serve(secondary_settings) as url,
        client(url, tokens.observer) as http,
        client(url) as anonymous,
    ):
        assert (await anonymous.get("/metrics")).status_code == 401
        before = (await http.get("/metrics")).text
        assert value(before, "ccat_buffer_depth") == 0
        async with client(url, tokens.operator) as writer:
            for _ in range(2):
                await writer.post("/executed_obs_units/start", json={"obs_unit_id": 1})
        await asyncio.sleep(1.1)  # the status sample is cached for up to a second
        during = (await http.get("/metrics")).text
        assert value(during, "ccat_buffer_depth") == 2
        assert value(during, "ccat_transactions_accepted_total") == 2
        assert value(during, "ccat_buffer_accept_rate") > 0
        assert re.search(
            r'^ccat_http_request_duration_seconds_count\{method="POST",'
            r'route="/executed_obs_units/start",status="201"\} [1-9]',
            during,
            re.M,
        ), "request latency by route missing"
        batches_before = replay_sample("ccat_replay_batch_transactions_count")
        replayed_before = replay_sample("ccat_replay_batch_transactions_sum")
        await worker.processor.run_once()
        stack.wait_replica_caught_up()
        await worker.tracker.run_once()
        await asyncio.sleep(1.1)
        after = (await http.get("/metrics")).text
        assert value(after, "ccat_buffer_depth") == 0
        assert value(after, "ccat_transactions_applied_total") == 2
        assert value(after, "ccat_transactions_visible_total") == 2
        assert value(after, "ccat_replay_batches_total") == 1
        assert value(after, "ccat_replica_apply_lag_bytes") == 0
        assert value(after, "ccat_processor_state", f'site="{site}",state="idle"') == 1
        assert value(after, "ccat_redis_up") == 1
        # The processor measured its batch in its own registry; this gateway runs none, so it
        # shows no processor histograms (they would sit at zero forever).
        assert replay_sample("ccat_replay_batch_transactions_count") == batches_before + 1
        assert replay_sample("ccat_replay_batch_transactions_sum") == replayed_before + 2
        assert not re.search(
            r"^ccat_replay_batch_(transactions|duration_seconds)_count", after, re.M
        )
        async with monitor(url, "/api/ws/buffer", tokens.observer) as ws:
            assert (await frame(ws))["type"] == "hello"
            watched = (await http.get("/metrics")).text
            assert value(watched, "ccat_websocket_connections", 'stream="buffer"') == 1


# --- metrics: what each figure says, and what a scrape says when something is down -----------


async def test_metrics_show_dead_letters_pending_age_and_the_drain_estimate(
    stack: Stack, tokens: Tokens, secondary_settings: Settings, worker: SiteWorker
) -> None:
    settings = live_settings(secondary_settings)  # a scrape's sample is at most 0.1 s old
    site = settings.site_name
    async with (
        serve(settings) as url,
        client(url, tokens.observer) as http,
        client(url, tokens.operator) as writer,
    ):

        async def scrape() -> str:
            await asyncio.sleep(0.15)
            return (await http.get("/metrics")).text

        async def write() -> dict[str, Any]:
            answer = await writer.post("/executed_obs_units/start", json={"obs_unit_id": 1})
            assert answer.status_code == 201, answer.text
            written: dict[str, Any] = answer.json()
            return written

        doomed, _ = await write(), await write()
        await scrape()  # rates are measured from this sample on
        await asyncio.sleep(0.5)
        stalled = await scrape()
        assert site_metric(stalled, "ccat_buffer_depth", site) == 2
        assert site_metric(stalled, "ccat_buffer_oldest_pending_age_seconds", site) >= 0.5
        assert site_metric(stalled, "ccat_buffer_drain_rate", site) == 0
        assert site_metric(stalled, "ccat_dead_letters", site) == 0
        # Work waits and nothing drains: no estimate, rather than a made-up one.
        assert metric(stalled, "ccat_buffer_estimated_drain_seconds", f'site="{site}"') is None

        with refused_on_main(stack, "executed_obs_units", f"id <> '{doomed['id']}'::uuid"):
            assert await worker.processor.run_once() == 2
        await write()
        draining = await scrape()
        assert site_metric(draining, "ccat_dead_letters", site) == 1
        assert site_metric(draining, "ccat_buffer_depth", site) == 1
        drain_rate = site_metric(draining, "ccat_buffer_drain_rate", site)
        assert drain_rate > 0
        assert site_metric(draining, "ccat_buffer_estimated_drain_seconds", site) == (
            pytest.approx(1 / drain_rate, abs=0.1)
        )
        # The oldest waiting write is now the one just made.
        assert site_metric(draining, "ccat_buffer_oldest_pending_age_seconds", site) < (
            site_metric(stalled, "ccat_buffer_oldest_pending_age_seconds", site)
        )

        assert await worker.processor.run_once() == 1
        drained = await scrape()
        assert site_metric(drained, "ccat_buffer_depth", site) == 0
        assert site_metric(drained, "ccat_buffer_estimated_drain_seconds", site) == 0
        assert site_metric(drained, "ccat_buffer_oldest_pending_age_seconds", site) == 0
        assert site_metric(drained, "ccat_dead_letters", site) == 1


async def test_replica_receive_lag_grows_while_replication_cannot_cross_the_wan(
    stack: Stack, tokens: Tokens, secondary_settings: Settings
) -> None:
    """The replica streams from main through the WAN simulator. This site's gateway and
    processor reach main directly, so with the WAN down main's position is still known while
    the replica's stays put: what main wrote since is receive lag, and nothing waits to be
    applied (apply lag 0, however old the last replayed commit is)."""
    settings = live_settings(secondary_settings).model_copy(
        update={"main_db_url": stack.main_db.url()}
    )
    site = settings.site_name
    redis = make_redis(settings.redis_url)
    direct = build_worker(settings, redis)
    try:
        async with serve(settings) as url, client(url, tokens.observer) as http:
            async with client(url, tokens.operator) as writer:
                answer = await writer.post("/executed_obs_units/start", json={"obs_unit_id": 1})
                assert answer.status_code == 201, answer.text

            async def scrape() -> str:
                await asyncio.sleep(0.15)
                return (await http.get("/metrics")).text

            stack.wan.down()
            assert await direct.processor.run_once() == 1  # on main, across no WAN

            async def lagging() -> str:
                """The scrape once it shows receive lag and no apply lag, else ""."""
                text = await scrape()
                lag = metric(text, "ccat_replica_receive_lag_bytes", f'site="{site}"')
                applied = metric(text, "ccat_replica_apply_lag_bytes", f'site="{site}"')
                return text if (lag or 0) > 0 and applied == 0 else ""

            text = await eventually(lagging, timeout_s=WAIT_S)
            assert site_metric(text, "ccat_replica_apply_lag_seconds", site) == 0
            assert site_metric(text, "ccat_replica_up", site) == 1

            stack.wan.up()

            async def caught_up() -> bool:
                text = await scrape()
                return metric(text, "ccat_replica_receive_lag_bytes", f'site="{site}"') == 0

            await eventually(caught_up, timeout_s=WAIT_S)
    finally:
        stack.wan.up()
        await direct.processor.close()
        await direct.tracker.close()
        await redis.aclose()


async def test_a_gateway_that_runs_the_processor_exposes_its_replay_histograms(
    tokens: Tokens, secondary_settings: Settings
) -> None:
    settings = secondary_settings.model_copy(update={"run_processor": True})
    async with serve(settings) as url, client(url, tokens.admin) as http:
        before = (await http.get("/metrics")).text
        count = metric(before, "ccat_replay_batch_transactions_count")
        replayed = metric(before, "ccat_replay_batch_transactions_sum")
        assert count is not None
        assert replayed is not None
        assert metric(before, "ccat_replay_batch_duration_seconds_count") == count
        written = (await http.post("/executed_obs_units/start", json={"obs_unit_id": 1})).json()

        async def applied() -> bool:
            state = (await http.get(f"/transactions/{written['tx_id']}")).json()["state"]
            return state in ("applied", "visible")

        await eventually(applied, timeout_s=WAIT_S)
        after = (await http.get("/metrics")).text
        assert metric(after, "ccat_replay_batch_transactions_sum") == replayed + 1
        assert (metric(after, "ccat_replay_batch_duration_seconds_count") or 0) > count


async def test_with_redis_down_metrics_and_status_say_the_buffer_is_unavailable(
    stack: Stack, tokens: Tokens, secondary_settings: Settings
) -> None:
    settings = live_settings(secondary_settings)
    site = settings.site_name
    async with (
        serve(settings) as url,
        client(url, tokens.observer) as http,
        monitor(url, "/api/ws/buffer", tokens.observer) as ws,
    ):
        assert (await frame(ws))["type"] == "hello"
        assert (await frame(ws))["data"]["redis"] == {"ok": True, "error": None}
        assert (await http.get("/api/site/status")).status_code == 200
        ticket = (await http.post("/api/ws/tickets")).json()["ticket"]
        await asyncio.to_thread(stack.redis.kill)
        try:
            # A ticket's single use is kept in Redis: it cannot be redeemed now, and the
            # monitor is told to come back later (1013), not that its credential is bad.
            async with monitor(url, f"/api/ws/buffer?ticket={ticket}") as refused:
                assert await close_code(refused) == 1013
            await asyncio.sleep(0.15)  # past the cached sample
            scraped = await http.get("/metrics")
            assert scraped.status_code == 200, scraped.text
            assert site_metric(scraped.text, "ccat_redis_up", site) == 0
            assert site_metric(scraped.text, "ccat_replica_up", site) == 1
            # This process's own metrics are there, exactly when they matter.
            served = metric(
                scraped.text,
                "ccat_http_request_duration_seconds_count",
                'method="GET",route="/api/site/status",status="200"',
            )
            assert (served or 0) >= 1
            assert metric(scraped.text, "ccat_websocket_connections", 'stream="buffer"') == 1
            # No buffer figure rather than a stale or zero one.
            assert metric(scraped.text, "ccat_buffer_depth", f'site="{site}"') is None
            answer = await http.get("/api/site/status")
            assert answer.status_code == 200, answer.text
            status = answer.json()
            assert status["buffer"] is None
            assert status["processor"] is None
            assert status["redis"]["ok"] is False
            assert status["redis"]["error"]
            assert status["replica"]["ok"] is True
            # Monitors are told too, instead of keeping the last figures.
            down = await frame_where(
                ws, lambda f: f["type"] == "update" and f["data"]["redis"]["ok"] is False
            )
            assert down["data"]["buffer"] is None
        finally:
            await asyncio.to_thread(stack.redis.start)
        back = await frame_where(
            ws, lambda f: f["type"] == "update" and f["data"]["redis"]["ok"] is True
        )
        assert back["data"]["buffer"]["depth"] == 0
        await asyncio.sleep(0.15)
        assert site_metric((await http.get("/metrics")).text, "ccat_redis_up", site) == 1
