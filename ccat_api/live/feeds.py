"""Snapshots pushed to monitors: computed once per process, whatever the number of monitors.

A feed recomputes its snapshot when an event says something changed (after ``debounce_s``, so
a burst of writes costs one recomputation) and at least every ``interval_s`` (changes made
elsewhere, such as other sites' replays arriving on main, publish no event here). It sends
a frame only when the snapshot differs from the last one sent, unless ``always`` is set.
Nothing is computed while no monitor listens.

When a snapshot cannot be computed (its database is down), monitors get one ``unavailable``
frame saying why, rather than a last snapshot that silently goes stale, and an ``update``
again as soon as it can be computed. (The buffer stream's status sample reports Redis or
the replica being down inside the snapshot itself, so it keeps ticking.)
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable

import orjson
from pydantic import BaseModel

from ccat_api.errors import first_line
from ccat_api.live.hub import EventHub, Subscription
from ccat_api.waits import first_of, sleep_or_stop

log = logging.getLogger(__name__)


class Feed:
    def __init__(
        self,
        name: str,
        hub: EventHub,
        compute: Callable[[], Awaitable[BaseModel]],
        *,
        interval_s: float,
        debounce_s: float,
        always: bool = False,
    ) -> None:
        self.name = name
        self._hub = hub
        self._compute = compute
        self._interval_s = interval_s
        self._debounce_s = debounce_s
        self._always = always
        self._dirty = asyncio.Event()
        self._lock = asyncio.Lock()
        self._last_sent: bytes | None = None
        self._failing = False
        self._listeners = 0
        hub.on_events(lambda _events: self._dirty.set())

    async def snapshot_frame(self) -> str:
        """The current snapshot as a ``snapshot`` frame, for a monitor that just connected
        (or an ``unavailable`` frame when it cannot be computed now)."""
        try:
            data = await self._data()
        except Exception as exc:
            log.warning("feed %s: could not compute a snapshot: %s", self.name, exc)
            return _unavailable_frame(self.name, exc)
        return _frame("snapshot", self.name, data)

    def subscribe(self) -> Subscription:
        self._listeners += 1
        return self._hub.subscribe(self.name)

    def unsubscribe(self, subscription: Subscription) -> None:
        self._listeners -= 1
        self._hub.unsubscribe(subscription)

    async def run(self, stop: asyncio.Event) -> None:
        while not stop.is_set():
            await first_of(stop, self._dirty, timeout_s=self._interval_s)
            if stop.is_set():
                return
            if self._dirty.is_set():
                await sleep_or_stop(stop, self._debounce_s)
                self._dirty.clear()
            if self._listeners <= 0:
                continue
            try:
                data = await self._data()
            except Exception as exc:
                if not self._failing:
                    log.warning("feed %s: could not compute a snapshot", self.name, exc_info=True)
                    self._hub.broadcast(_unavailable_frame(self.name, exc), self.name)
                self._failing = True
                # Whatever comes next differs from what monitors were told last.
                self._last_sent = None
                continue
            if self._failing:
                log.info("feed %s: snapshots computed again", self.name)
                self._failing = False
            if self._always or data != self._last_sent:
                self._last_sent = data
                self._hub.broadcast(_frame("update", self.name, data), self.name)

    async def _data(self) -> bytes:
        async with self._lock:
            return orjson.dumps((await self._compute()).model_dump(mode="json"))


def _unavailable_frame(name: str, exc: Exception) -> str:
    reason = first_line(exc)[:300]
    return orjson.dumps({"type": "unavailable", "stream": name, "error": reason}).decode()


def _frame(kind: str, name: str, data: bytes) -> str:
    return '{"type":"' + kind + '","stream":"' + name + '","data":' + data.decode() + "}"
