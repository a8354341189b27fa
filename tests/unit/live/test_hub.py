from __future__ import annotations

import asyncio
import json
from typing import Any

import orjson

from ccat_api.buffering.keys import SiteKeys
from ccat_api.live.hub import SUMMARY_THRESHOLD, EventHub, Subscription


def hub(queue_size: int = 4) -> EventHub:
    return EventHub(None, SiteKeys("unit"), queue_size=queue_size)


def publish(target: EventHub, tx_id: str, state: str = "buffered") -> None:
    target.dispatch(orjson.dumps({"tx_id": tx_id, "state": state}))


def sent(subscription: Subscription) -> list[dict[str, Any]]:
    """The frames a monitor's connection would send now, decoded."""

    async def drain() -> list[dict[str, Any]]:
        frames = subscription.frames()
        out = []
        while not subscription.queue.empty():
            out.append(json.loads(await anext(frames)))
        return out

    return asyncio.run(drain())


def test_a_transaction_monitor_gets_only_its_transaction() -> None:
    events = hub()
    everything = events.subscribe("transactions")
    one = events.subscribe("transactions", "tx-1")
    publish(events, "tx-1")
    publish(events, "tx-2")
    assert [f["event"]["tx_id"] for f in sent(one)] == ["tx-1"]
    (frame,) = sent(everything)  # both were waiting: one frame
    assert frame["type"] == "events"
    assert [e["tx_id"] for e in frame["events"]] == ["tx-1", "tx-2"]


def test_a_lone_event_goes_out_as_an_event_frame() -> None:
    events = hub()
    monitor = events.subscribe("transactions")
    publish(events, "tx-1", "applied")
    assert sent(monitor) == [{"type": "event", "event": {"tx_id": "tx-1", "state": "applied"}}]


def test_a_large_batch_reaches_site_wide_monitors_as_counts_with_failures_listed() -> None:
    events = hub()
    everything = events.subscribe("transactions")
    one = events.subscribe("transactions", "tx-7")
    batch = [{"tx_id": f"tx-{i}", "state": "applied"} for i in range(SUMMARY_THRESHOLD + 10)]
    batch[3] = {"tx_id": "tx-3", "state": "failed", "code": "23505"}
    events.dispatch(orjson.dumps(batch))
    (frame,) = sent(everything)
    assert frame["events"] == [{"tx_id": "tx-3", "state": "failed", "code": "23505"}]
    assert frame["summarized"] == {"applied": SUMMARY_THRESHOLD + 9}
    assert sent(one) == [{"type": "event", "event": {"tx_id": "tx-7", "state": "applied"}}]


def test_a_small_batch_is_listed_in_full() -> None:
    events = hub()
    everything = events.subscribe("transactions")
    events.dispatch(
        orjson.dumps([{"tx_id": "a", "state": "visible"}, {"tx_id": "b", "state": "visible"}])
    )
    (frame,) = sent(everything)
    assert [e["tx_id"] for e in frame["events"]] == ["a", "b"]
    assert "summarized" not in frame


def test_a_monitor_that_falls_behind_is_marked_and_gets_no_more() -> None:
    events = hub(queue_size=2)
    slow = events.subscribe("transactions")
    fast = events.subscribe("transactions")
    for i in range(3):
        publish(events, f"tx-{i}")
        fast.queue.get_nowait()
    assert slow.overflowed.is_set()
    assert not fast.overflowed.is_set()
    assert slow.queue.qsize() == 2


def test_snapshots_are_not_merged_into_event_frames() -> None:
    events = hub()
    monitor = events.subscribe("transactions")
    publish(events, "tx-1")
    monitor.offer('{"type":"resync"}')
    publish(events, "tx-2")
    assert [f["type"] for f in sent(monitor)] == ["event", "resync", "event"]


def test_feed_streams_do_not_receive_transaction_events() -> None:
    events = hub()
    buffer = events.subscribe("buffer")
    seen: list[str] = []
    events.on_events(lambda batch: seen.extend(e["tx_id"] for e in batch))
    publish(events, "tx-1")
    assert buffer.queue.empty()
    assert seen == ["tx-1"]


def test_events_that_are_not_json_are_ignored() -> None:
    events = hub()
    monitor = events.subscribe("transactions")
    events.dispatch(b"not json")
    assert monitor.queue.empty()
    assert events.events_seen == 0


async def test_events_close_together_are_fanned_out_once_after_the_linger() -> None:
    events = EventHub(None, SiteKeys("unit"), queue_size=4, linger_s=0.05)
    monitor = events.subscribe("transactions")
    publish(events, "tx-1")
    publish(events, "tx-2")
    assert monitor.queue.empty()  # held for the linger
    await asyncio.sleep(0.1)
    assert monitor.queue.qsize() == 1
    frame = json.loads(await anext(monitor.frames()))
    assert [e["tx_id"] for e in frame["events"]] == ["tx-1", "tx-2"]
