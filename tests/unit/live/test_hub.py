from __future__ import annotations

import json

import orjson

from ccat_api.buffering.keys import SiteKeys
from ccat_api.live.hub import EventHub


def hub(queue_size: int = 4) -> EventHub:
    return EventHub(None, SiteKeys("unit"), queue_size=queue_size)


def publish(target: EventHub, tx_id: str, state: str = "buffered") -> None:
    target.dispatch(orjson.dumps({"tx_id": tx_id, "state": state}))


def test_a_transaction_monitor_gets_only_its_transaction() -> None:
    events = hub()
    everything = events.subscribe("transactions")
    one = events.subscribe("transactions", "tx-1")
    publish(events, "tx-1")
    publish(events, "tx-2")
    assert everything.queue.qsize() == 2
    assert [json.loads(one.queue.get_nowait())["event"]["tx_id"]] == ["tx-1"]
    assert one.queue.empty()


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


def test_feed_streams_do_not_receive_transaction_events() -> None:
    events = hub()
    buffer = events.subscribe("buffer")
    seen: list[str] = []
    events.on_event(lambda event: seen.append(event["tx_id"]))
    publish(events, "tx-1")
    assert buffer.queue.empty()
    assert seen == ["tx-1"]


def test_events_that_are_not_json_are_ignored() -> None:
    events = hub()
    monitor = events.subscribe("transactions")
    events.dispatch(b"not json")
    assert monitor.queue.empty()
    assert events.events_seen == 0
