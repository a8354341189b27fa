from __future__ import annotations

import asyncio
import json
from typing import Any

from pydantic import BaseModel

from ccat_api.buffering.keys import SiteKeys
from ccat_api.live.feeds import Feed
from ccat_api.live.hub import EventHub


class Overview(BaseModel):
    building: int


async def test_a_feed_that_cannot_compute_says_so_once_then_updates_when_it_can() -> None:
    hub = EventHub(None, SiteKeys("unit"), queue_size=64)
    reachable = False

    async def compute() -> Overview:
        if not reachable:
            raise OSError("replica unreachable")
        return Overview(building=1)

    feed = Feed("overview", hub, compute, interval_s=0.01, debounce_s=0.0)
    # A monitor connecting now is told why there is no snapshot.
    assert json.loads(await feed.snapshot_frame()) == {
        "type": "unavailable",
        "stream": "overview",
        "error": "replica unreachable",
    }
    monitor = feed.subscribe()
    stop = asyncio.Event()
    runner = asyncio.create_task(feed.run(stop))
    await asyncio.sleep(0.1)  # several intervals, every one failing
    reachable = True
    await asyncio.sleep(0.1)
    stop.set()
    await asyncio.wait_for(runner, 5)
    frames: list[dict[str, Any]] = []
    while not monitor.queue.empty():
        item = monitor.queue.get_nowait()
        assert isinstance(item, str)
        frames.append(json.loads(item))
    # One notice for the whole failure, then the snapshot (sent once: it did not change).
    assert frames == [
        {"type": "unavailable", "stream": "overview", "error": "replica unreachable"},
        {"type": "update", "stream": "overview", "data": {"building": 1}},
    ]
