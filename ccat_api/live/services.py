"""The live-monitoring parts of one gateway process, built together and run by the lifespan:
the event hub, the status sampler, the buffer-status and transfer-overview feeds, the
status history's recorder, and the WebSocket ticket issuer."""

from __future__ import annotations

import asyncio
import functools
import math
from dataclasses import dataclass

from ccat_api.auth.tickets import TicketIssuer
from ccat_api.domain.overview import transfer_overview
from ccat_api.health import HealthProbe
from ccat_api.live.feeds import Feed
from ccat_api.live.history import HistoryRecorder, HistoryStore, MemoryHistory, RedisHistory
from ccat_api.live.hub import EventHub
from ccat_api.live.models import SiteStatus
from ccat_api.live.status import StatusSampler
from ccat_api.runtime import Runtime
from ccat_api.supervisor import Faults, supervise

BUFFER_STREAM = "buffer"
OVERVIEW_STREAM = "transfer_overview"
TRANSACTIONS_STREAM = "transactions"


@dataclass
class LiveServices:
    hub: EventHub
    sampler: StatusSampler
    buffer_feed: Feed
    overview_feed: Feed
    history: HistoryRecorder
    tickets: TicketIssuer
    # Where a crash of the history's loop is recorded (the site's /health says so).
    faults: Faults
    # Set when the process stops: monitors are closed with 1001 (uvicorn itself closes
    # them with 1012 first when it is the one stopping).
    stopping: asyncio.Event

    @classmethod
    def build(cls, runtime: Runtime, health: HealthProbe) -> LiveServices:
        settings = runtime.settings
        hub = EventHub(
            runtime.redis, runtime.keys,
            queue_size=settings.ws_queue_size, linger_s=settings.ws_linger_s,
        )  # fmt: skip
        sampler = StatusSampler(runtime, health, max_age_s=settings.live_status_interval_s / 2)

        async def status() -> SiteStatus:
            return await sampler.current()

        # One more than retention / interval: the oldest sample still covers the retention.
        max_samples = math.ceil(settings.history_retention_s / settings.history_interval_s) + 1
        store: HistoryStore = (
            RedisHistory(runtime.redis, runtime.keys.history, max_samples=max_samples)
            if runtime.redis is not None
            else MemoryHistory(max_samples=max_samples)
        )

        return cls(
            hub=hub,
            sampler=sampler,
            # Ages and rates change every second: the status stream ticks regardless.
            buffer_feed=Feed(
                BUFFER_STREAM, hub, status,
                interval_s=settings.live_status_interval_s, debounce_s=settings.live_debounce_s,
                always=True,
            ),
            overview_feed=Feed(
                OVERVIEW_STREAM, hub, lambda: transfer_overview(runtime.reader),
                interval_s=settings.live_overview_interval_s, debounce_s=settings.live_debounce_s,
            ),
            history=HistoryRecorder(
                status, store,
                interval_s=settings.history_interval_s, retention_s=settings.history_retention_s,
            ),
            tickets=TicketIssuer(
                settings.session_secret, settings.site_name, runtime.directory, runtime.redis,
                runtime.keys,
                ttl_s=settings.ws_ticket_ttl_s, db=runtime.read_db,
                token_cache_ttl_s=settings.token_cache_ttl_s,
            ),
            faults=health.faults,
            stopping=asyncio.Event(),
        )  # fmt: skip

    def start(self) -> list[asyncio.Task[None]]:
        """The hub, the feeds and the history's recorder, until ``stopping`` is set."""
        record = functools.partial(self.history.run_forever, self.stopping)
        return [
            asyncio.create_task(self.hub.run(self.stopping)),
            asyncio.create_task(self.buffer_feed.run(self.stopping)),
            asyncio.create_task(self.overview_feed.run(self.stopping)),
            asyncio.create_task(supervise("history", record, self.stopping, faults=self.faults)),
        ]
