"""Retention on main: ``ccat_prune_retention`` (db/sql) forgets old bookkeeping without letting
anything apply twice (``buffering/retention.py`` is the same concept at a site).

applied_transactions rows go once older than ``retention_horizon_s`` and below their site's
watermark; the site's prune bound, kept with the watermark, makes ccat_apply_batch refuse
any of them as already applied. Idempotency answers go to a tombstone after
``idempotency_ttl_s`` and away after ``idempotency_tombstone_ttl_s``. The main-site gateway
runs ``run_forever`` every ``prune_interval_s``; ``ccat-api prune`` runs one pass (cron).
"""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass
from datetime import timedelta

import orjson
import sqlalchemy as sa
from sqlalchemy.exc import DBAPIError, OperationalError

from ccat_api.config import Settings
from ccat_api.db.engines import PrimaryDatabase
from ccat_api.metrics import PRUNED_ROWS
from ccat_api.waits import sleep_or_stop

log = logging.getLogger(__name__)

# Rows of each kind one call deletes at most: one call stays a short transaction, however
# long pruning was off; a pass calls again until nothing is left.
ROWS_PER_CALL = 50_000
# A pass ends after this many calls; the next pass goes on.
CALLS_PER_PASS_MAX = 200

_PRUNE = sa.text(
    "SELECT ccat_prune_retention(:direct_site, :horizon, :answer_ttl, :tombstone_ttl, :rows)"
)


@dataclass
class PruneCounts:
    applied_transactions: int = 0
    idempotency_answers_compacted: int = 0
    idempotency_tombstones_deleted: int = 0
    # Another pass held the lock (another gateway worker, or ccat-api prune at once).
    skipped: bool = False

    def add(self, report: dict[str, object]) -> None:
        for name in (
            "applied_transactions",
            "idempotency_answers_compacted",
            "idempotency_tombstones_deleted",
        ):
            count = int(report.get(name, 0))  # type: ignore[call-overload]
            setattr(self, name, getattr(self, name) + count)
            PRUNED_ROWS.labels(name).inc(count)


class Pruner:
    def __init__(self, primary: PrimaryDatabase, settings: Settings) -> None:
        self._primary = primary
        # Direct writes at the main site are recorded under its name, with seq 0.
        self._direct_site = None if settings.is_secondary else settings.site_name
        self._horizon = timedelta(seconds=settings.retention_horizon_s)
        self._answer_ttl = timedelta(seconds=settings.idempotency_ttl_s)
        self._tombstone_ttl = timedelta(seconds=settings.idempotency_tombstone_ttl_s)
        self._interval_s = settings.prune_interval_s

    async def run_once(self) -> PruneCounts:
        """One pass: calls until nothing is left to prune (or the pass's cap)."""
        counts = PruneCounts()
        for _ in range(CALLS_PER_PASS_MAX):
            report = await self._primary.call(
                _PRUNE,
                {
                    "direct_site": self._direct_site,
                    "horizon": self._horizon,
                    "answer_ttl": self._answer_ttl,
                    "tombstone_ttl": self._tombstone_ttl,
                    "rows": ROWS_PER_CALL,
                },
            )
            if isinstance(report, str | bytes):
                report = orjson.loads(report)
            if report.get("skipped"):
                counts.skipped = True
                break
            counts.add(report)
            if not report.get("more"):
                break
        return counts

    async def run_forever(self, stop: asyncio.Event) -> None:
        while not stop.is_set():
            try:
                counts = await self.run_once()
            except (DBAPIError, OperationalError, OSError, TimeoutError) as exc:
                log.warning("pruning failed, trying again next period: %s", exc)
            else:
                log.info(
                    "pruned %d applied transactions, %d idempotency answers to tombstones,"
                    " %d tombstones", counts.applied_transactions,
                    counts.idempotency_answers_compacted, counts.idempotency_tombstones_deleted,
                    extra={"event": "pruned"},
                )  # fmt: skip
            await sleep_or_stop(stop, self._interval_s)
