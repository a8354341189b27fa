"""Backpressure from cached readings: a write never waits for INFO, a reading is taken at most
every refresh interval, and writes accepted between readings count towards the threshold."""

from __future__ import annotations

import asyncio
from typing import Any, cast

import pytest
from redis.asyncio import Redis
from redis.exceptions import ConnectionError as RedisConnectionError

from ccat_api.buffering.capacity import BufferCapacity
from ccat_api.errors import BufferNearCapacity


class FakeRedis:
    """Answers INFO memory with whatever the test sets."""

    def __init__(self, used: int, maximum: int) -> None:
        self.used, self.maximum = used, maximum
        self.reads = 0
        self.down = False

    async def info(self, section: str) -> dict[str, Any]:
        assert section == "memory"
        self.reads += 1
        if self.down:
            raise RedisConnectionError("Connection refused")
        return {"used_memory": self.used, "maxmemory": self.maximum}


def _capacity(redis: FakeRedis, refresh_s: float = 60.0) -> BufferCapacity:
    return BufferCapacity(cast(Redis, redis), max_fraction=0.9, refresh_s=refresh_s)


async def _settle(capacity: BufferCapacity) -> None:
    """Let the background reading a check started finish."""
    for _ in range(10):
        await asyncio.sleep(0)
    await capacity.close()


async def test_writes_are_refused_at_the_threshold_with_retry_after() -> None:
    redis = FakeRedis(used=900, maximum=1000)
    capacity = _capacity(redis)
    capacity.check()  # no reading yet: no verdict, a reading starts
    await _settle(capacity)
    with pytest.raises(BufferNearCapacity) as refused:
        capacity.check()
    assert refused.value.status_code == 503
    assert refused.value.retry_after_s is not None
    assert "near capacity" in refused.value.message
    assert "90%" in refused.value.message


async def test_no_limit_applies_while_maxmemory_is_unset() -> None:
    redis = FakeRedis(used=10**12, maximum=0)
    capacity = _capacity(redis)
    await capacity.read()
    capacity.check()
    assert capacity.refusal() is None


async def test_a_write_never_waits_for_a_reading_and_readings_are_cached() -> None:
    redis = FakeRedis(used=100, maximum=1000)
    capacity = _capacity(redis)
    await capacity.read()
    for _ in range(1000):
        capacity.check()
    await _settle(capacity)
    assert redis.reads == 1  # the reading is fresh: none taken for the 1000 checks


async def test_a_stale_reading_is_refreshed_in_the_background_once() -> None:
    redis = FakeRedis(used=100, maximum=1000)
    capacity = _capacity(redis, refresh_s=0.0)
    await capacity.read()
    redis.used = 950
    capacity.check()  # answers from the old reading...
    capacity.check()  # ...and one refresh is in flight, not two
    await _settle(capacity)
    assert redis.reads == 2
    with pytest.raises(BufferNearCapacity):
        capacity.check()


async def test_writes_accepted_since_the_last_reading_count_towards_the_threshold() -> None:
    redis = FakeRedis(used=100, maximum=1000)
    capacity = _capacity(redis)
    await capacity.read()
    for _ in range(10):
        capacity.accepted()
    redis.used = 200  # 10 bytes per write
    await capacity.read()
    for _ in range(69):
        capacity.accepted()
    capacity.check()  # 200 + 69 * 10 = 890: under 900
    capacity.accepted()
    with pytest.raises(BufferNearCapacity):
        capacity.check()  # 200 + 70 * 10 = 900


async def test_a_drain_lowers_the_figure_without_forgetting_the_size_of_a_write() -> None:
    redis = FakeRedis(used=100, maximum=1000)
    capacity = _capacity(redis)
    await capacity.read()
    for _ in range(10):
        capacity.accepted()
    redis.used = 200
    await capacity.read()
    capacity.accepted()
    redis.used = 150  # the processor drained more than this write added
    await capacity.read()
    for _ in range(149):
        capacity.accepted()
    capacity.check()  # 150 + 149 * 5 (halved from 10, not forgotten) = 895
    capacity.accepted()
    with pytest.raises(BufferNearCapacity):
        capacity.check()  # 150 + 150 * 5 = 900


async def test_without_a_reading_the_write_goes_on_to_meet_redis_itself() -> None:
    redis = FakeRedis(used=950, maximum=1000)
    capacity = _capacity(redis, refresh_s=0.0)
    await capacity.read()
    redis.down = True
    with pytest.raises(BufferNearCapacity):
        capacity.check()  # the last reading still says full; a refresh starts
    await _settle(capacity)
    assert capacity.reading is None
    capacity.check()  # Redis away: the accept's own error says so, not a stale figure
