"""Fan-out of the site's events to this process's WebSocket monitors.

One Redis pub/sub subscription per process (not one per monitor) receives every state change
the buffering scripts publish; each monitor has a bounded queue. A monitor that falls
``queue_size`` items behind is marked overflowed and dropped by its connection, so one slow
reader never delays the others or grows this process's memory.

Where the server offers it (``live/frames.py``), a monitor that has caught up takes its frames
straight to its socket: the hub frames an event once and writes the same bytes to every
site-wide monitor, with no task or ASGI send per monitor. Its bound is then the bytes its
socket has not taken (``queue_size`` KiB beyond what the kernel holds).

Frames cost CPU per monitor, so events travel together where they can: a replayed batch is
one message from Redis and one item per queue, events waiting in a queue go out as one
``events`` frame, and a batch larger than ``SUMMARY_THRESHOLD`` reaches the site-wide stream
as counts by state (failures always listed) rather than thousands of rows per monitor.
Pub/sub keeps no history: after a lost Redis connection every monitor gets a ``resync``
frame and re-reads state over REST.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections import Counter
from collections.abc import AsyncIterator, Callable
from typing import Any

import orjson
from redis.asyncio import Redis
from redis.exceptions import RedisError

from ccat_api.buffering.keys import SiteKeys
from ccat_api.live.frames import FrameSink, text_frame

log = logging.getLogger(__name__)
RECONNECT_S = 1.0
RESYNC_FRAME = orjson.dumps({"type": "resync"}).decode()
# A batch with more events than this reaches site-wide monitors as counts by state.
SUMMARY_THRESHOLD = 200
# Events merged into one frame at most (a monitor that is behind catches up in few frames).
MAX_EVENTS_PER_FRAME = 1000
# Events that every monitor sees one by one, even inside a large batch.
ALWAYS_LISTED = frozenset({"failed"})
# A monitor written to directly may leave this many bytes per frame of its queue_size unsent
# (a frame is ~150 bytes; a batch's frame up to a few KiB).
DIRECT_BYTES_PER_FRAME = 1024


class Events:
    """Events for monitors, as JSON texts, and counts of those left out. One instance goes
    to every site-wide monitor, so its frame is encoded once, for the first of them."""

    __slots__ = ("_frame", "_wire", "summarized", "texts")

    def __init__(self, texts: tuple[str, ...], summarized: tuple[tuple[str, int], ...] = ()):
        self.texts = texts
        self.summarized = summarized
        self._frame: str | None = None
        self._wire: bytes | None = None

    @property
    def frame(self) -> str:
        if self._frame is None:
            self._frame = events_frame([self])
        return self._frame

    @property
    def wire(self) -> bytes:
        """The frame as a WebSocket frame's bytes (for monitors written to directly)."""
        if self._wire is None:
            self._wire = text_frame(self.frame)
        return self._wire


class Subscription:
    """One monitor's queue: encoded frames (snapshots, updates) and events to be framed."""

    def __init__(self, stream: str, queue_size: int, tx_id: str | None = None) -> None:
        self.stream = stream
        self.tx_id = tx_id
        self.queue: asyncio.Queue[str | Events] = asyncio.Queue(maxsize=queue_size)
        self.overflowed = asyncio.Event()
        # Set by the monitor once its opening frames are out; used once the queue is empty.
        self.sink: FrameSink | None = None
        self._direct = False

    @property
    def direct(self) -> bool:
        """Whether frames now go straight to the socket rather than through the queue."""
        return self._direct

    def offer(self, item: str | Events) -> None:
        if self.overflowed.is_set():
            return
        if self._direct:
            assert self.sink is not None
            frame = item.wire if isinstance(item, Events) else text_frame(item)
            unsent = self.sink.write(frame)
            # None: the connection is closing, and its monitor is about to leave.
            if unsent is not None and unsent > self.queue.maxsize * DIRECT_BYTES_PER_FRAME:
                self.overflowed.set()
            return
        try:
            self.queue.put_nowait(item)
        except asyncio.QueueFull:
            self.overflowed.set()

    async def frames(self) -> AsyncIterator[str]:
        """What to send, in order; events waiting next to each other share a frame. Ends
        when a sink is set and everything queued has been sent: the hub writes from then
        on (in the same step as the queue was found empty, so the order holds)."""
        carried: str | Events | None = None
        while True:
            if carried is None and self.sink is not None and self.queue.empty():
                self._direct = True
                return
            item = carried if carried is not None else await self.queue.get()
            carried = None
            if isinstance(item, str):
                yield item
                continue
            batch = [item]
            count = len(item.texts)
            while count < MAX_EVENTS_PER_FRAME and not self.queue.empty():
                following = self.queue.get_nowait()
                if isinstance(following, str):
                    carried = following
                    break
                batch.append(following)
                count += len(following.texts)
            yield batch[0].frame if len(batch) == 1 else events_frame(batch)


def events_frame(batch: list[Events]) -> str:
    texts = [text for events in batch for text in events.texts]
    summarized: Counter[str] = Counter()
    for events in batch:
        if events.summarized:
            summarized.update(dict(events.summarized))
    if len(texts) == 1 and not summarized:
        return '{"type":"event","event":' + texts[0] + "}"
    frame = '{"type":"events","events":[' + ",".join(texts) + "]"
    if summarized:
        frame += ',"summarized":' + orjson.dumps(dict(summarized)).decode()
    return frame + "}"


class EventHub:
    def __init__(
        self, redis: Redis | None, keys: SiteKeys, *, queue_size: int, linger_s: float = 0.0
    ) -> None:
        self._redis = redis
        self._keys = keys
        self.queue_size = queue_size
        # Events arriving within linger_s of each other are fanned out together: one pass
        # over the monitors and one frame each, instead of one per event. Under load that
        # is most of the fan-out's CPU; it delays an event by at most linger_s.
        self._linger_s = linger_s
        self._pending: list[tuple[list[dict[str, Any]], list[str]]] = []
        self._flush_scheduled: asyncio.TimerHandle | None = None
        self._subscribers: set[Subscription] = set()
        self._listeners: list[Callable[[list[dict[str, Any]]], None]] = []
        self.ready = asyncio.Event()
        self.events_seen = 0

    @property
    def enabled(self) -> bool:
        """Without Redis (a main site may run without one) there are no events to fan out."""
        return self._redis is not None

    def subscribe(self, stream: str, tx_id: str | None = None) -> Subscription:
        subscription = Subscription(stream, self.queue_size, tx_id)
        self._subscribers.add(subscription)
        return subscription

    def unsubscribe(self, subscription: Subscription) -> None:
        self._subscribers.discard(subscription)

    def on_events(self, listener: Callable[[list[dict[str, Any]]], None]) -> None:
        """Called for every message of events (feeds use it to know they are stale)."""
        self._listeners.append(listener)

    def broadcast(self, frame: str, stream: str | None = None) -> None:
        for subscription in list(self._subscribers):
            if stream is None or subscription.stream == stream:
                subscription.offer(frame)

    async def run(self, stop: asyncio.Event) -> None:
        if self._redis is None:
            return
        first = True
        while not stop.is_set():
            pubsub = self._redis.pubsub()
            try:
                await pubsub.subscribe(self._keys.events)
                if not first:
                    self.broadcast(RESYNC_FRAME)
                first = False
                self.ready.set()
                await self._pump(pubsub, stop)
            except (RedisError, OSError) as exc:
                self.ready.clear()
                log.warning("event subscription lost (%s); monitors will resync", exc)
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(stop.wait(), RECONNECT_S)
            finally:
                with contextlib.suppress(RedisError, OSError):
                    await pubsub.aclose()  # type: ignore[no-untyped-call]

    async def _pump(self, pubsub: Any, stop: asyncio.Event) -> None:
        while not stop.is_set():
            message = await pubsub.get_message(ignore_subscribe_messages=True, timeout=1.0)
            if message is None or message.get("type") != "message":
                continue
            self.dispatch(message["data"])

    def dispatch(self, data: bytes) -> None:
        """Hand one published message (an event, or a batch's array of events) to every
        interested monitor, encoded once for all of them."""
        try:
            decoded = orjson.loads(data)
        except orjson.JSONDecodeError:
            log.warning("ignoring an event that is not JSON: %r", data[:200])
            return
        events: list[dict[str, Any]] = decoded if isinstance(decoded, list) else [decoded]
        self.events_seen += len(events)
        if not any(s.stream == "transactions" for s in self._subscribers):
            # Nobody watches transactions here: the feeds need to know only that work moved
            # (a drain sends batches of thousands through every gateway's hub).
            for listener in self._listeners:
                listener(events)
            return
        texts = (
            [data.decode()]
            if isinstance(decoded, dict)
            else [orjson.dumps(e).decode() for e in events]
        )
        self._pending.append((events, texts))
        if self._linger_s <= 0:
            self.flush()
        elif self._flush_scheduled is None:
            loop = asyncio.get_running_loop()
            self._flush_scheduled = loop.call_later(self._linger_s, self.flush)

    def flush(self) -> None:
        """Fan out what arrived since the last flush."""
        self._flush_scheduled = None
        pending, self._pending = self._pending, []
        if not pending:
            return
        events = [event for batch, _ in pending for event in batch]
        texts = [text for _, batch in pending for text in batch]
        watchers = [s for s in self._subscribers if s.stream == "transactions"]
        if any(s.tx_id is None for s in watchers):
            everything = _for_everyone(events, texts)
            for subscription in watchers:
                if subscription.tx_id is None:
                    subscription.offer(everything)
        one_by_one = [s for s in watchers if s.tx_id is not None]
        if one_by_one:
            by_tx: dict[str, list[str]] = {}
            for event, text in zip(events, texts, strict=True):
                by_tx.setdefault(str(event.get("tx_id")), []).append(text)
            for subscription in one_by_one:
                mine = by_tx.get(str(subscription.tx_id))
                if mine:
                    subscription.offer(Events(tuple(mine)))
        for listener in self._listeners:
            listener(events)


def _for_everyone(events: list[dict[str, Any]], texts: list[str]) -> Events:
    if len(events) <= SUMMARY_THRESHOLD:
        return Events(tuple(texts))
    listed = tuple(
        text
        for event, text in zip(events, texts, strict=True)
        if event.get("state") in ALWAYS_LISTED
    )
    counts = Counter(str(e.get("state")) for e in events if e.get("state") not in ALWAYS_LISTED)
    return Events(listed, tuple(sorted(counts.items())))
