"""When each API token was last used, without a write to main on the request path.

Requests note the time in memory; a background task writes the latest time per token to main
every ``token_usage_flush_s`` in one statement. At a secondary site that statement crosses
the WAN; while main is unreachable the times wait in memory and go with the next flush.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql
from sqlalchemy.exc import SQLAlchemyError

from ccat_api.db.engines import PrimaryDatabase

log = logging.getLogger(__name__)

_FLUSH = sa.text(
    """
    UPDATE api_tokens AS t SET last_used_at = to_timestamp(v.used_at)
      FROM unnest(:ids, :used_at) AS v(id, used_at)
     WHERE t.id = v.id AND (t.last_used_at IS NULL OR t.last_used_at < to_timestamp(v.used_at))
    """
).bindparams(
    sa.bindparam("ids", type_=postgresql.ARRAY(sa.Integer)),
    sa.bindparam("used_at", type_=postgresql.ARRAY(sa.Float)),
)


class TokenUsage:
    def __init__(self) -> None:
        self._seen: dict[int, float] = {}

    def seen(self, token_id: int) -> None:
        self._seen[token_id] = time.time()

    async def flush(self, db: PrimaryDatabase) -> int:
        if not self._seen:
            return 0
        batch, self._seen = self._seen, {}
        try:
            async with db.begin() as conn:
                await conn.execute(_FLUSH, {"ids": list(batch), "used_at": list(batch.values())})
        except (SQLAlchemyError, OSError, TimeoutError):
            for token_id, used_at in batch.items():
                self._seen[token_id] = max(used_at, self._seen.get(token_id, 0.0))
            raise
        return len(batch)

    async def flush_forever(
        self, db: PrimaryDatabase, stop: asyncio.Event, interval_s: float
    ) -> None:
        while not stop.is_set():
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), timeout=interval_s)
            try:
                await self.flush(db)
            except (SQLAlchemyError, OSError, TimeoutError) as exc:
                log.info("token last-used times kept for the next flush: %s", exc)
