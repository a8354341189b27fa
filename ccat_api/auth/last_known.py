"""Authentication lookups cached briefly, with the last answer kept for when the site's
database cannot be reached.

A site learns of a revocation, a disabled account or a role change only through its
database (the replica at a secondary site). While that database is down the site can learn
nothing new, so the last answer it read is the best it has: serving it keeps the operator
console, ``/metrics`` and the site status answering through a replica outage, which is when
they are needed. A credential the database did not know (or refused with an error) is never
kept, and a refusal that was kept stays a refusal, so an outage cannot bring a refused
credential back.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable, Hashable
from typing import Generic, TypeVar

from cachetools import LRUCache, TTLCache

from ccat_api.db.failures import unreachable

log = logging.getLogger(__name__)

K = TypeVar("K", bound=Hashable)
V = TypeVar("V")


class LastKnown(Generic[K, V]):
    """Fresh answers for ``ttl_s`` (0: always ask the database); the last answer per key for
    as long as the database is unreachable."""

    def __init__(self, what: str, *, ttl_s: float, maxsize: int = 10_000) -> None:
        self._what = what
        self._fresh: TTLCache[K, V] | None = (
            TTLCache(maxsize=maxsize, ttl=ttl_s) if ttl_s > 0 else None
        )
        self._known: LRUCache[K, V] = LRUCache(maxsize=maxsize)

    async def get(self, key: K, load: Callable[[], Awaitable[V | None]]) -> V | None:
        if self._fresh is not None and key in self._fresh:
            return self._fresh[key]
        try:
            value = await load()
        except Exception as exc:
            known = self._known.get(key)
            if known is None or not unreachable(exc):
                self._known.pop(key, None)
                raise
            log.warning("database unreachable, using the last known %s: %s", self._what, exc)
            return known
        if value is None:
            self.forget(key)
        else:
            self.put(key, value)
        return value

    def put(self, key: K, value: V) -> None:
        if self._fresh is not None:
            self._fresh[key] = value
        self._known[key] = value

    def forget(self, key: K) -> None:
        if self._fresh is not None:
            self._fresh.pop(key, None)
        self._known.pop(key, None)
