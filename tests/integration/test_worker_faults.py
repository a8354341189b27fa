"""The site worker neither dies nor dies silently: an exception nobody expected is logged,
counted, shown in /health and survived; an envelope it cannot read is a dead letter, not a
stop; Redis away while main is unreachable stops no process; a gateway started while Redis
is down comes up, serves what the replica can and refuses writes until Redis is back."""

from __future__ import annotations

import asyncio
import dataclasses
import signal
import time
from pathlib import Path
from typing import Any

import httpx
from prometheus_client import REGISTRY

from ccat_api import failpoints
from ccat_api.buffering.buffer import WriteBuffer
from ccat_api.buffering.builder import TransactionBuilder
from ccat_api.buffering.envelope import Envelope, Principal
from ccat_api.buffering.idempotency import Answer
from ccat_api.buffering.keys import SiteKeys
from ccat_api.buffering.wire import text
from ccat_api.buffering.worker import SiteWorker
from ccat_api.config import Settings
from ccat_api.devstack.stack import Stack
from ccat_api.devstack.system import free_port
from ccat_api.runtime import make_redis
from tests.integration.conftest import Tokens
from tests.support import client, eventually, ok, serve, start_eou

REDIS_DOWN_S = 15.0


async def degraded_report(http: httpx.AsyncClient) -> dict[str, Any]:
    """/health's report once it says the site is degraded; empty until then."""
    report: dict[str, Any] = (await http.get("/health")).json()
    return report if report.get("degraded") else {}


async def state_of(http: httpx.AsyncClient, tx_id: str) -> str:
    return str(ok(await http.get(f"/transactions/{tx_id}"))["state"])


async def processor_state(redis_url: str, site: str) -> str | None:
    redis = make_redis(redis_url)
    try:
        state = await redis.hget(SiteKeys(site).processor, "state")
    finally:
        await redis.aclose()
    return text(state) if state else None


def crash_lines(log_file: Path) -> list[str]:
    return [line for line in log_file.read_text().splitlines() if "loop_crashed" in line]


async def test_a_processor_exception_is_logged_counted_shown_and_replay_resumes(
    stack: Stack, tokens: Tokens, secondary_settings: Settings
) -> None:
    site = secondary_settings.site_name
    metrics_port = free_port()
    processor = stack.start_processor(
        site, env={"CCAT_FAILPOINTS": "processor_pass=raise*1"}, metrics_port=metrics_port
    )
    try:
        async with serve(secondary_settings) as url, client(url, tokens.operator) as http:
            eou = await start_eou(http)
            report = await eventually(lambda: degraded_report(http), timeout_s=20)
            assert (await http.get("/health")).status_code == 200  # writes are still taken
            assert report["status"] == "degraded"
            assert "the processor loop crashed" in report["degraded"][0]
            assert "FailpointError: failpoint processor_pass" in report["degraded"][0]
            await eventually(
                lambda: _in_state(http, eou["tx_id"], "applied", "visible"), timeout_s=20
            )
        async with httpx.AsyncClient() as scraper:
            metrics = (await scraper.get(f"http://127.0.0.1:{metrics_port}/metrics")).text
        assert 'ccat_loop_crashes_total{loop="processor"} 1.0' in metrics
        logged = crash_lines(processor.log_file)
        assert len(logged) == 1
        assert "Traceback" in logged[0]
        assert "FailpointError" in logged[0]
        assert processor.running()
    finally:
        code = processor.stop()
    assert code == 0


async def test_a_tracker_exception_in_the_gateway_is_counted_shown_and_survived(
    stack: Stack, tokens: Tokens, secondary_settings: Settings
) -> None:
    settings = secondary_settings.model_copy(update={"run_processor": True})
    before = REGISTRY.get_sample_value("ccat_loop_crashes_total", {"loop": "tracker"}) or 0.0
    failpoints.arm("tracker_pass", "raise*1")
    try:
        async with serve(settings) as url, client(url, tokens.operator) as http:
            report = await eventually(lambda: degraded_report(http), timeout_s=20)
            assert "the tracker loop crashed" in report["degraded"][0]
            async with client(url, tokens.observer) as observer:
                status = ok(await observer.get("/api/site/status"))
            assert any("tracker loop crashed" in reason for reason in status["degraded"])
            eou = await start_eou(http)
            await eventually(lambda: _in_state(http, eou["tx_id"], "visible"), timeout_s=20)
    finally:
        failpoints.disarm("tracker_pass")
    after = REGISTRY.get_sample_value("ccat_loop_crashes_total", {"loop": "tracker"})
    assert after == before + 1


async def test_redis_stopped_while_main_is_unreachable_stops_no_process_and_all_drains(
    stack: Stack, tokens: Tokens, secondary_settings: Settings
) -> None:
    site = secondary_settings.site_name
    processor = stack.start_processor(site)
    gateway_b: Any = None
    try:
        async with serve(secondary_settings) as url, client(url, tokens.operator) as http:
            eou = await start_eou(http)
            await eventually(lambda: _in_state(http, eou["tx_id"], "applied", "visible"))
            stack.wan.down()
            written = [await start_eou(http) for _ in range(5)]
            # A batch on its way to main when Redis goes: its failure is handled while Redis
            # is away (the heartbeat that used to end the process).
            await eventually(
                lambda: _state_is(secondary_settings.redis_url, site, "applying"),
                timeout_s=20,
                interval_s=0.02,
            )
            await asyncio.to_thread(stack.redis.stop)
            redis_stopped_at = time.monotonic()
            try:
                url_b = await asyncio.to_thread(
                    stack.start_gateway, site, secondary=True, run_processor=True
                )
                gateway_b = stack.gateways[site]
                async with client(url_b, tokens.operator) as http_b:
                    health = await http_b.get("/health")
                    assert health.status_code == 503
                    assert health.json()["redis"]["ok"] is False
                    assert "not been checked" in health.json()["redis"]["writes_refused"]
                    refused = await http_b.post(
                        "/executed_obs_units/start", json={"obs_unit_id": 1}
                    )
                    assert refused.status_code == 503, refused.text
                    assert refused.headers["Retry-After"]
                    assert (await http_b.get("/obs_units")).status_code == 200
                await asyncio.sleep(max(0.0, REDIS_DOWN_S - (time.monotonic() - redis_stopped_at)))
                assert processor.running()
                assert gateway_b.running()
            finally:
                await asyncio.to_thread(stack.redis.start)
            stack.wan.up()
            async with client(url_b, tokens.operator) as http_b:
                await eventually(lambda: _status_is(http_b, 200), timeout_s=20)
                written.append(await start_eou(http_b))
            tx_ids = [write["tx_id"] for write in written]
            await eventually(lambda: _all_visible(http, tx_ids), timeout_s=30)
        assert processor.running()
        assert gateway_b.running()
        assert crash_lines(processor.log_file) == []
        assert crash_lines(gateway_b.log_file) == []
    finally:
        if stack.redis.process is None:
            await asyncio.to_thread(stack.redis.start)
        stack.wan.up()
        processor_code = processor.stop()
        gateway_code = stack.gateways.pop(site).stop() if gateway_b is not None else None
    assert processor_code == 0
    # uvicorn re-raises the SIGTERM it stopped on once it has shut down cleanly.
    assert gateway_code in (None, 0, -signal.SIGTERM)


class _NewerEnvelope(Envelope):
    """As a newer gateway might buffer it: with an op this processor does not know."""

    __slots__ = ()

    def to_json(self) -> bytes:
        return Envelope.to_json(self).replace(b'"op":"update"', b'"op":"upsert"')


async def test_an_envelope_the_processor_cannot_read_is_dead_lettered_and_replay_goes_on(
    stack: Stack, tokens: Tokens, secondary_settings: Settings, worker: SiteWorker
) -> None:
    site = secondary_settings.site_name
    redis = make_redis(secondary_settings.redis_url)
    buffer = WriteBuffer(redis, SiteKeys(site), idempotency_ttl_s=60)
    try:
        async with serve(secondary_settings) as url, client(url, tokens.operator) as http:
            before = await start_eou(http)
            builder = TransactionBuilder(site, Principal(None, "newer-gateway", "operator"))
            builder.update("executed_obs_units", before["id"], {"conditions": {"n": 1}}, {})
            built = builder.build()
            unreadable = _NewerEnvelope(
                **{f.name: getattr(built, f.name) for f in dataclasses.fields(built)}
            )
            await buffer.accept(unreadable, Answer(201, {}))
            # Touches the record the unreadable one updates: it depends on it.
            dependent = ok(await http.put(f"/executed_obs_units/{before['id']}/finish", json={}))
            after = await start_eou(http)
            assert await worker.processor.run_once() == 4
            states = {
                name: ok(await http.get(f"/transactions/{tx_id}"))
                for name, tx_id in (
                    ("before", before["tx_id"]),
                    ("unreadable", unreadable.tx_id),
                    ("dependent", dependent["tx_id"]),
                    ("after", after["tx_id"]),
                )
            }
    finally:
        await redis.aclose()
    assert states["unreadable"]["state"] == "failed"
    assert states["unreadable"]["error_code"] == "unreadable_envelope"
    assert "upsert" in states["unreadable"]["error"]
    assert states["dependent"]["error_code"] == "dependency_failed"
    assert {states["before"]["state"], states["after"]["state"]} == {"applied"}


async def _in_state(http: httpx.AsyncClient, tx_id: str, *states: str) -> bool:
    return await state_of(http, tx_id) in states


async def _all_visible(http: httpx.AsyncClient, tx_ids: list[str]) -> bool:
    return all([await _in_state(http, tx_id, "visible") for tx_id in tx_ids])


async def _state_is(redis_url: str, site: str, state: str) -> bool:
    return await processor_state(redis_url, site) == state


async def _status_is(http: httpx.AsyncClient, status: int) -> bool:
    try:
        return (await http.get("/health")).status_code == status
    except httpx.TransportError:
        return False
