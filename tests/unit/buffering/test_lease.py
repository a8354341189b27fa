"""Lease.kept_alive ends with its block, whatever the Redis client does with a cancellation."""

from __future__ import annotations

import asyncio
import contextlib
from typing import Any

import pytest

from ccat_api.buffering.keys import SiteKeys
from ccat_api.buffering.lease import Lease

pytestmark = pytest.mark.timeout(10)


class SwallowingRedis:
    """Stands in for a client whose retry catches a CancelledError landing mid-command (the
    renewal then answers as if nothing happened)."""

    def __init__(self) -> None:
        self.renewals = 0
        self.in_renewal = asyncio.Event()

    def register_script(self, source: str) -> Any:
        async def call(keys: list[str], args: list[object]) -> int:
            self.renewals += 1
            self.in_renewal.set()
            with contextlib.suppress(asyncio.CancelledError):  # as the retry wrapper did
                await asyncio.sleep(0.2)
            return 1

        return call


async def test_kept_alive_ends_when_a_renewal_swallows_the_cancellation() -> None:
    redis = SwallowingRedis()
    lease = Lease(redis, SiteKeys("s"), ttl_s=0.03)  # type: ignore[arg-type]
    lease.epoch = 1
    async with lease.kept_alive():
        await asyncio.wait_for(redis.in_renewal.wait(), 5)
    # The block is left during a renewal; leaving returned, and no renewal follows.
    renewals = redis.renewals
    await asyncio.sleep(0.1)
    assert redis.renewals == renewals
