"""Frames encoded once for every monitor: what ``text_frame`` writes is what a WebSocket
client reads, and a monitor that caught up gets the hub's frames straight to its socket, in
order, until its socket holds more than its bound."""

from __future__ import annotations

import asyncio
import json

import orjson
import pytest
from websockets.frames import Frame, Opcode
from websockets.streams import StreamReader

from ccat_api.buffering.keys import SiteKeys
from ccat_api.live.frames import text_frame
from ccat_api.live.hub import DIRECT_BYTES_PER_FRAME, EventHub


def parsed(data: bytes) -> Frame:
    """``data`` read the way a client reads a server's frame (no mask expected)."""
    reader = StreamReader()
    reader.feed_data(data)
    parser = Frame.parse(reader.read_exact, mask=False)
    try:
        next(parser)
    except StopIteration as done:
        frame: Frame = done.value
        return frame
    raise AssertionError("incomplete frame")


@pytest.mark.parametrize("size", [0, 1, 125, 126, 65_535, 65_536, 200_000])
def test_a_text_frame_reads_back_as_its_text_at_every_length_encoding(size: int) -> None:
    text = "é" * (size // 2) + "x" * (size % 2)
    frame = parsed(text_frame(text))
    assert (frame.opcode, frame.fin, bytes(frame.data).decode()) == (Opcode.TEXT, True, text)


class Sink:
    def __init__(self, unsent: int = 0) -> None:
        self.written: list[bytes] = []
        self.unsent = unsent
        self.closing = False

    def write(self, frame: bytes) -> int | None:
        if self.closing:
            return None
        self.written.append(frame)
        return self.unsent


def test_a_monitor_with_a_sink_gets_queued_frames_first_then_direct_writes() -> None:
    hub = EventHub(None, SiteKeys("unit"), queue_size=4)
    monitor = hub.subscribe("transactions")
    hub.dispatch(orjson.dumps({"tx_id": "tx-1", "state": "buffered"}))
    sink = Sink()
    monitor.sink = sink  # type: ignore[assignment]

    async def send_queued() -> list[str]:
        return [frame async for frame in monitor.frames()]

    queued = asyncio.run(send_queued())
    assert [json.loads(f)["event"]["tx_id"] for f in queued] == ["tx-1"]
    assert monitor.direct
    hub.dispatch(orjson.dumps({"tx_id": "tx-2", "state": "buffered"}))
    hub.dispatch(orjson.dumps([{"tx_id": "tx-2", "state": "applied"}]))
    texts = [bytes(parsed(frame).data).decode() for frame in sink.written]
    assert [json.loads(t)["event"] for t in texts] == [
        {"tx_id": "tx-2", "state": "buffered"},
        {"tx_id": "tx-2", "state": "applied"},
    ]
    assert monitor.queue.empty()
    assert not monitor.overflowed.is_set()


def test_every_site_wide_monitor_is_written_the_same_bytes() -> None:
    hub = EventHub(None, SiteKeys("unit"), queue_size=4)
    sinks = [Sink() for _ in range(3)]
    for sink in sinks:
        monitor = hub.subscribe("transactions")
        monitor.sink = sink  # type: ignore[assignment]
        asyncio.run(anext(monitor.frames(), None))
    hub.dispatch(orjson.dumps({"tx_id": "tx-1", "state": "visible"}))
    first = sinks[0].written[0]
    assert all(sink.written == [first] for sink in sinks)
    assert all(sink.written[0] is first for sink in sinks)  # encoded once


def test_a_direct_monitor_whose_socket_holds_too_much_is_marked_overflowed() -> None:
    hub = EventHub(None, SiteKeys("unit"), queue_size=4)
    monitor = hub.subscribe("transactions")
    sink = Sink(unsent=4 * DIRECT_BYTES_PER_FRAME + 1)
    monitor.sink = sink  # type: ignore[assignment]
    asyncio.run(anext(monitor.frames(), None))
    hub.dispatch(orjson.dumps({"tx_id": "tx-1", "state": "buffered"}))
    assert monitor.overflowed.is_set()
    hub.dispatch(orjson.dumps({"tx_id": "tx-2", "state": "buffered"}))
    assert len(sink.written) == 1  # nothing more once dropped


def test_a_closing_connection_is_not_written_to_and_not_counted_as_slow() -> None:
    hub = EventHub(None, SiteKeys("unit"), queue_size=4)
    monitor = hub.subscribe("transactions")
    sink = Sink()
    sink.closing = True
    monitor.sink = sink  # type: ignore[assignment]
    asyncio.run(anext(monitor.frames(), None))
    hub.dispatch(orjson.dumps({"tx_id": "tx-1", "state": "buffered"}))
    assert sink.written == []
    assert not monitor.overflowed.is_set()
