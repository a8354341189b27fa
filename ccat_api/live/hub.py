"""Fan-out of the site's events to this process's WebSocket monitors.

One Redis pub/sub subscription per process (not one per monitor) receives every state change
the buffering scripts publish; each monitor has a bounded queue of encoded frames. A monitor
that falls ``queue_size`` frames behind is marked overflowed and dropped by its connection,
so one slow reader never delays the others or grows this process's memory. Pub/sub keeps no
history: after a lost Redis connection every monitor gets a ``resync`` frame and re-reads
state over REST.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable
from typing import Any

import orjson
from redis.asyncio import Redis
from redis.exceptions import RedisError

from ccat_api.buffering.keys import SiteKeys

log = logging.getLogger(__name__)
RECONNECT_S = 1.0
RESYNC_FRAME = orjson.dumps({"type": "resync"}).decode()


class Subscription:
    """One monitor's queue of frames waiting to be sent."""

    def __init__(self, stream: str, queue_size: int, tx_id: str | None = None) -> None:
        self.stream = stream
        self.tx_id = tx_id
        self.queue: asyncio.Queue[str] = asyncio.Queue(maxsize=queue_size)
        self.overflowed = asyncio.Event()

    def offer(self, frame: str) -> None:
        if self.overflowed.is_set():
            return
        try:
            self.queue.put_nowait(frame)
        except asyncio.QueueFull:
            self.overflowed.set()


class EventHub:
    def __init__(self, redis: Redis | None, keys: SiteKeys, *, queue_size: int) -> None:
        self._redis = redis
        self._keys = keys
        self.queue_size = queue_size
        self._subscribers: set[Subscription] = set()
        self._listeners: list[Callable[[dict[str, Any]], None]] = []
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

    def on_event(self, listener: Callable[[dict[str, Any]], None]) -> None:
        """Called for every event (feeds use it to know their snapshot is stale)."""
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
        """Hand one published event to every interested monitor, encoded once for all."""
        try:
            event = orjson.loads(data)
        except orjson.JSONDecodeError:
            log.warning("ignoring an event that is not JSON: %r", data[:200])
            return
        self.events_seen += 1
        frame = '{"type":"event","event":' + data.decode() + "}"
        tx_id = event.get("tx_id")
        for subscription in list(self._subscribers):
            if subscription.stream == "transactions" and subscription.tx_id in (None, tx_id):
                subscription.offer(frame)
        for listener in self._listeners:
            listener(event)
