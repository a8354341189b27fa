"""The gateway's lifespan: what it starts, it stops, also when starting fails half way."""

from __future__ import annotations

import asyncio

import pytest

from ccat_api.app import create_app
from ccat_api.config import Settings
from ccat_api.devstack.stack import Stack
from ccat_api.runtime import make_redis


async def test_a_gateway_that_refuses_to_start_stops_everything_it_started(
    stack: Stack, secondary_settings: Settings
) -> None:
    # As the administrator: the gateway's own user may not change Redis's configuration.
    redis = make_redis(stack.redis.url)
    # A Redis that could lose acknowledged writes: the gateway refuses it, after the live
    # services (event hub, status feeds) have started.
    await redis.config_set("appendfsync", "everysec")
    try:
        before = asyncio.all_tasks()
        app = create_app(secondary_settings)
        with pytest.raises(RuntimeError, match="refusing to buffer writes"):
            async with app.router.lifespan_context(app):
                pass
        assert app.state.live.stopping.is_set()
        left = {task for task in asyncio.all_tasks() - before if not task.done()}
        assert left == set(), [task.get_coro() for task in left]
    finally:
        await redis.config_set("appendfsync", "always")
        await redis.aclose()
