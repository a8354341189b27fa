"""State changes published for monitors: every script that changes a transaction's state
PUBLISHes ``{"tx_id", "state", ...}`` on the site's events channel in the same atomic step,
so any gateway worker can fan them out to its WebSocket clients. A script that settles many
transactions at once publishes one JSON array of their events."""

from __future__ import annotations

from collections.abc import AsyncGenerator
from typing import Any

import orjson
from redis.asyncio import Redis

from ccat_api.buffering.keys import SiteKeys


async def subscribe(redis: Redis, keys: SiteKeys) -> AsyncGenerator[dict[str, Any]]:
    """Events as they happen (pub/sub keeps no history: read status by tx_id for the past)."""
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
