"""Backpressure and quotas against real services: a gateway filling a small-``maxmemory``
Redis of its own is refused with 503 near capacity before Redis refuses anything, with nothing
half-written, and says so in its status and metrics; a token over its write quota gets 429
with Retry-After, and is accepted again after the window (at a main site without Redis too,
counted in the process); the SDK waits out both."""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import redis.asyncio as aioredis

from ccat_api.client import AsyncClient, RetryEvent, RetryPolicy
from ccat_api.config import Settings
from ccat_api.devstack.redis_server import RedisServer
from ccat_api.devstack.stack import Stack
from ccat_api.devstack.system import free_port
from tests.integration.conftest import Tokens
from tests.support import buffer_state, client, serve, start_eou

FILE = {
    "name": "scan.fits",
    "size_bytes": 1024,
    "checksum": "sha256:00112233445566778899",
    "file_type": "fits",
    "instrument_module_id": 1,
}
# Long enough to span several memory readings (every 0.5 s): no write slips through on one.
KEEP_REFUSING_S = 1.5


@pytest.fixture
def small_redis(tmp_path: Path) -> Iterator[RedisServer]:
    """A Redis of this test's own that a few hundred writes fill."""
    server = RedisServer(tmp_path / "redis", free_port(), extra_args=["--maxmemory", "2mb"])
    server.start()
    try:
        yield server
    finally:
        server.stop()


def _file(eou: str) -> dict[str, Any]:
    return {**FILE, "relative_path": f"{eou}/{uuid.uuid4().hex}.fits", "executed_obs_unit_id": eou}


async def _memory(url: str) -> tuple[int, int]:
    redis = aioredis.Redis.from_url(url)
    try:
        info = await redis.info("memory")
    finally:
        await redis.aclose()
    return int(info["used_memory"]), int(info["maxmemory"])


async def test_a_filling_buffer_refuses_writes_before_redis_does_and_half_writes_none(
    stack: Stack, tokens: Tokens, site_name: str, small_redis: RedisServer
) -> None:
    settings = Settings.model_validate(
        {
            **stack.settings_overrides(site_name),
            "redis_url": small_redis.url,
            "run_processor": False,  # nothing drains: the buffer only grows
            "token_cache_ttl_s": 0,
        }
    )
    assert settings.buffer_max_memory_fraction == 0.9  # the default, as a site runs it
    answers: dict[int, int] = {}
    refusals: list[httpx.Response] = []
    async with serve(settings) as url, client(url, tokens.service) as http:
        eou = (await start_eou(http))["id"]
        answers[201] = 1
        first_refused_at: float | None = None
        status: dict[str, Any] = {}
        deadline = time.monotonic() + 60
        # Near the threshold a fresh reading lets a write or two through, until the buffer
        # stands at it; by then the site's status says so.
        while not status.get("buffer", {}).get("near_capacity"):
            assert time.monotonic() < deadline, f"not refusing steadily: {answers}"
            answer = await http.post("/raw_data_files", json=_file(eou))
            answers[answer.status_code] = answers.get(answer.status_code, 0) + 1
            if answer.status_code == 201:
                continue
            refusals.append(answer)
            first_refused_at = first_refused_at or time.monotonic()
            if time.monotonic() - first_refused_at > KEEP_REFUSING_S:
                status = (await http.get("/api/site/status")).json()

        # Every refusal is the gateway's own, never Redis's OOM passed on.
        assert set(answers) == {201, 503}, answers
        for refused in refusals:
            body = refused.json()
            assert body["code"] == "buffer_near_capacity", body
            assert "near capacity" in body["detail"]
            assert set(body) == {"detail", "field", "code"}
            assert int(refused.headers["Retry-After"]) > 0
        assert answers[201] > 20  # filled through the gateway, not by the test
        used, maximum = await _memory(small_redis.url)
        assert used < maximum, "Redis reached maxmemory: it would have refused writes itself"

        # Nothing half-written: the stream holds exactly the writes that got a 2xx.
        held = await buffer_state(small_redis.url, site_name)
        assert held["stream"] == answers[201]

        buffer = status["buffer"]
        assert buffer["memory_max_bytes"] == maximum
        # Refused at the threshold (0.9), not long before it.
        assert buffer["memory_used_fraction"] >= 0.85
        assert any("near capacity" in reason for reason in status["degraded"])
        metrics = (await http.get("/metrics")).text
        assert f'ccat_buffer_near_capacity{{site="{site_name}"}} 1.0' in metrics
        assert f'ccat_buffer_memory_used_ratio{{site="{site_name}"}} 0.' in metrics

        # Room again (an operator raised maxmemory): the next reading lets writes through.
        control = aioredis.Redis.from_url(small_redis.url)
        try:
            await control.config_set("maxmemory", "64mb")
        finally:
            await control.aclose()

        async def accepted_again() -> bool:
            answer = await http.post("/raw_data_files", json=_file(eou))
            return answer.status_code == 201

        deadline = time.monotonic() + 10
        while not await accepted_again():
            assert time.monotonic() < deadline, "writes still refused after maxmemory was raised"
            await asyncio.sleep(0.1)


def _limited(stack: Stack, site_name: str, limit: str) -> Settings:
    return Settings.model_validate(
        {
            **stack.settings_overrides(site_name),
            "run_processor": False,
            "token_cache_ttl_s": 0,
            "write_rate_limit": limit,
        }
    )


async def test_a_token_over_its_write_quota_gets_429_then_is_accepted_after_the_window(
    stack: Stack, tokens: Tokens, site_name: str
) -> None:
    settings = _limited(stack, site_name, "5 per 3 seconds")
    async with (
        serve(settings) as url,
        client(url, tokens.service) as http,
        client(url, tokens.operator) as other,
    ):
        eou = (await start_eou(http))["id"]
        accepted = 1
        for _ in range(4):
            answer = await http.post("/raw_data_files", json=_file(eou))
            assert answer.status_code == 201, answer.text
            accepted += 1
        limited = await http.post("/raw_data_files", json=_file(eou))
        assert limited.status_code == 429, limited.text
        assert limited.json() == {
            "detail": limited.json()["detail"],
            "field": None,
            "code": "rate_limited",
        }
        assert "5 per 3 second" in limited.json()["detail"]
        retry_after_s = int(limited.headers["Retry-After"])
        assert 1 <= retry_after_s <= 3

        # Another token has a quota of its own; reads are not counted.
        assert (await other.post("/raw_data_files", json=_file(eou))).status_code == 201
        accepted += 1
        assert (await http.get(f"/executed_obs_units/{eou}")).status_code == 200

        await asyncio.sleep(retry_after_s)
        answer = await http.post("/raw_data_files", json=_file(eou))
        assert answer.status_code == 201, answer.text
        accepted += 1
        held = await buffer_state(settings.redis_url, site_name)
        assert held["stream"] == accepted  # the refused write left nothing behind


async def test_the_sdk_waits_out_429s_and_every_write_is_buffered_once(
    stack: Stack, tokens: Tokens, site_name: str
) -> None:
    settings = _limited(stack, site_name, "3/second")
    events: list[RetryEvent] = []
    policy = RetryPolicy(max_attempts=10, backoff_initial_s=0.01, backoff_jitter_s=0.05)
    async with (
        serve(settings) as url,
        AsyncClient(url, tokens.service, retry=policy, on_retry=events.append) as sdk,
    ):
        eou = (await sdk.start_executed_obs_unit({"obs_unit_id": 1})).id
        results = [await sdk.register_file(_file(str(eou))) for _ in range(8)]
    assert all(r.status == "buffered" for r in results)
    assert any(e.status_code == 429 for e in events)
    # Waited the server's Retry-After (1 s, plus jitter), not the 0.01 s backoff.
    assert all(e.delay_s >= 1 for e in events if e.status_code == 429)
    held = await buffer_state(settings.redis_url, site_name)
    assert held["stream"] == 9


async def test_at_a_main_site_without_redis_the_quota_is_counted_in_the_process(
    stack: Stack, tokens: Tokens
) -> None:
    settings = Settings.model_validate(
        {**stack.settings_overrides("main", secondary=False), "write_rate_limit": "2 per 3 seconds"}
    )
    assert not settings.redis_url
    async with serve(settings) as url, client(url, tokens.service) as http:
        eou = (await start_eou(http))["id"]
        assert (await http.post("/raw_data_files", json=_file(eou))).status_code == 201
        limited = await http.post("/raw_data_files", json=_file(eou))
        assert limited.status_code == 429, limited.text
        assert limited.json()["code"] == "rate_limited"
        await asyncio.sleep(int(limited.headers["Retry-After"]))
        answer = await http.post("/raw_data_files", json=_file(eou))
        assert answer.status_code == 201, answer.text
        assert answer.json()["status"] == "applied"


# Longer than the Redis client's retries of a refused command take together (about 0.4 s)
# and shorter than the wait for Redis's answer (5 s).
REDIS_PAUSE_MS = 2000
CONCURRENT_WRITES = 20


async def test_writes_wait_for_a_redis_connection_while_redis_is_slow_rather_than_fail(
    stack: Stack, tokens: Tokens, secondary_settings: Settings
) -> None:
    # Two connections for twenty writes: eighteen find every connection busy while Redis
    # holds the first two (CLIENT PAUSE holds every write command for REDIS_PAUSE_MS).
    settings = secondary_settings.model_copy(update={"redis_pool_size": 2})
    admin = aioredis.Redis.from_url(stack.redis.url)
    try:
        async with serve(settings) as url, client(url, tokens.operator) as http:
            await start_eou(http)  # connections made, scripts loaded
            await admin.client_pause(REDIS_PAUSE_MS, all=False)  # write commands only
            paused_at = time.monotonic()
            answers = await asyncio.gather(
                *(
                    http.post("/executed_obs_units/start", json={"obs_unit_id": 1})
                    for _ in range(CONCURRENT_WRITES)
                )
            )
            waited_s = time.monotonic() - paused_at
    finally:
        await admin.aclose()
    assert [a.status_code for a in answers] == [201] * CONCURRENT_WRITES, [
        a.text for a in answers if a.status_code != 201
    ]
    # The pause was felt: the writes waited for Redis rather than passing around it.
    assert waited_s >= REDIS_PAUSE_MS / 1000 * 0.9
