"""The site status history behind the console's charts, against real services: samples of
the buffer and the rates between them, one per period for the whole site however many
gateways sample it, capped in Redis, served over REST; kept in memory at a main site
without Redis."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import pytest

from ccat_api.buffering.worker import SiteWorker
from ccat_api.config import Settings
from ccat_api.health import HealthProbe
from ccat_api.live.history import HistoryRecorder, RedisHistory
from ccat_api.live.status import StatusSampler
from ccat_api.runtime import Runtime
from tests.integration.conftest import Tokens
from tests.support import client, eventually, serve

# Below the 1 s floor Settings enforces (model_copy skips validation, on purpose), so a test
# sees many periods in a few seconds.
FAST_INTERVAL_S = 0.2
START_S = 1_800_000_000.0
INTERVAL_S = 10.0


@pytest.fixture
async def runtime(secondary_settings: Settings) -> AsyncIterator[Runtime]:
    built = Runtime.build(secondary_settings)
    try:
        yield built
    finally:
        await built.close()


async def test_samples_record_the_buffer_and_the_rates_between_periods(
    runtime: Runtime, secondary_settings: Settings, tokens: Tokens, worker: SiteWorker
) -> None:
    health = HealthProbe(runtime)
    sampler = StatusSampler(runtime, health, max_age_s=0)
    assert runtime.redis is not None
    store = RedisHistory(runtime.redis, runtime.keys.history, max_samples=3)
    now = [START_S + 3.0]  # a few seconds into a period

    def recorder() -> HistoryRecorder:
        return HistoryRecorder(
            sampler.current, store, interval_s=INTERVAL_S, retention_s=3600, clock=lambda: now[0]
        )

    first, second = recorder(), recorder()  # two gateway processes of the site
    try:
        empty = await first.run_once()
        assert empty is not None
        assert (empty.at, empty.depth, empty.accept_rate_tx_s) == (START_S, 0, None)
        assert await second.run_once() is None  # the period is taken
        # Two processes that sampled the same period at once: Redis keeps the first.
        assert await store.add(empty) is False

        async with serve(secondary_settings) as url, client(url, tokens.operator) as http:
            for _ in range(5):
                answer = await http.post("/executed_obs_units/start", json={"obs_unit_id": 1})
                assert answer.status_code == 201, answer.text
        now[0] += INTERVAL_S
        filled = await second.run_once()
        assert filled is not None
        assert (filled.depth, filled.accept_rate_tx_s, filled.drain_rate_tx_s) == (5, 0.5, 0.0)
        assert (filled.oldest_pending_age_s or 0) > 0
        assert filled.estimated_drain_s is None  # nothing drains

        assert await worker.processor.run_once() == 5
        now[0] += INTERVAL_S
        drained = await first.run_once()
        assert drained is not None
        assert (drained.depth, drained.accept_rate_tx_s, drained.drain_rate_tx_s) == (0, 0.0, 0.5)
        assert drained.estimated_drain_s == 0.0

        # After a gap (every gateway away) the first sample claims no rate across it.
        now[0] += 5 * INTERVAL_S
        after_gap = await second.run_once()
        assert after_gap is not None
        assert (after_gap.accept_rate_tx_s, after_gap.drain_rate_tx_s) == (None, None)

        # Bounded: the stream keeps the newest max_samples, and serves them oldest first.
        assert await runtime.redis.xlen(runtime.keys.history) == 3
        kept = await first.recent(None)
        assert [s.at for s in kept] == [
            START_S + INTERVAL_S, START_S + 2 * INTERVAL_S, START_S + 7 * INTERVAL_S,
        ]  # fmt: skip
        assert [s.at for s in await first.recent(START_S + 2 * INTERVAL_S)] == [after_gap.at]
    finally:
        await health.close()


async def test_gateways_of_a_site_serve_one_history_with_one_sample_per_period(
    secondary_settings: Settings, tokens: Tokens
) -> None:
    settings = secondary_settings.model_copy(
        update={"history_interval_s": FAST_INTERVAL_S, "history_retention_s": 3600}
    )

    async def samples(http: Any, **params: float) -> list[dict[str, Any]]:
        answer = await http.get("/api/site/history", params=params)
        assert answer.status_code == 200, answer.text
        body = answer.json()
        assert (body["site"], body["interval_s"]) == (settings.site_name, FAST_INTERVAL_S)
        found: list[dict[str, Any]] = body["samples"]
        return found

    async with serve(settings) as first_url, client(first_url, tokens.observer) as first:

        async def enough() -> list[dict[str, Any]]:
            found = await samples(first)
            return found if len(found) >= 5 else []

        before = await eventually(enough, timeout_s=20)
        # A gateway that starts now serves what the site sampled before it was there.
        async with serve(settings) as second_url, client(second_url, tokens.observer) as second:
            assert (await samples(second))[: len(before)] == before

            async def both_sampled() -> list[dict[str, Any]]:
                found = await samples(second)
                return found if len(found) >= len(before) + 8 else []

            await eventually(both_sampled, timeout_s=20)
            seen_first, seen_second = await samples(first), await samples(second)
        common = min(len(seen_first), len(seen_second))
        assert seen_first[:common] == seen_second[:common]
        ats = [sample["at"] for sample in seen_first]
        assert ats == sorted(set(ats))  # one sample per period, oldest first
        assert all(round(at * 1000) % round(FAST_INTERVAL_S * 1000) == 0 for at in ats)
        assert all(sample["depth"] == 0 for sample in seen_first)

        newer = await samples(first, since=ats[-2])
        assert [sample["at"] for sample in newer][:1] == [ats[-1]]

        async with client(first_url) as anonymous:
            assert (await anonymous.get("/api/site/history")).status_code == 401
        assert (await first.get("/api/site/history", params={"since": -1})).status_code == 422


async def test_a_main_site_without_redis_keeps_its_history_in_memory(
    main_settings: Settings, tokens: Tokens
) -> None:
    settings = main_settings.model_copy(update={"history_interval_s": FAST_INTERVAL_S})
    assert not settings.redis_url
    async with serve(settings) as url, client(url, tokens.observer) as http:

        async def some() -> list[dict[str, Any]]:
            answer = await http.get("/api/site/history")
            assert answer.status_code == 200, answer.text
            found: list[dict[str, Any]] = answer.json()["samples"]
            return found if len(found) >= 3 else []

        found = await eventually(some, timeout_s=20)
    # No buffer and no replica here: main's reachability is what a sample holds.
    assert {(s.get("depth"), s.get("replica_apply_lag_s"), s["main_ok"]) for s in found} == {
        (None, None, True)
    }
