"""Live monitoring: monitor connections (lifetime, queue, tickets, batching), the periods of
the status and overview streams, and the console's history samples. A group of settings
that ``config.Settings`` inherits (its one source of defaults, like every other setting)."""

from __future__ import annotations

from pydantic import BaseModel, Field


class LiveSettings(BaseModel):
    ws_max_lifetime_s: float = Field(
        default=3600.0,
        gt=0,
        description="A monitor connection is closed (code 4000, reconnect) after this long, so"
        " credentials are checked again and no connection outlives a revoked token by more.",
    )
    ws_queue_size: int = Field(
        default=256,
        ge=1,
        description="Frames a monitor may fall behind before it is dropped (code 1013) as a"
        " slow consumer.",
    )
    ws_ticket_ttl_s: int = Field(
        default=30,
        ge=5,
        le=600,
        description="Lifetime of a single-use ticket from POST /api/ws/tickets (browsers' way"
        " to authenticate).",
    )
    ws_linger_s: float = Field(
        default=0.02,
        ge=0,
        le=1,
        description="Events this close together share one fan-out pass and one frame per"
        " monitor: less CPU per event under load, at most this much added latency. 0 sends"
        " each event at once.",
    )
    live_status_interval_s: float = Field(
        default=1.0, gt=0, description="Period of the buffer-status stream."
    )
    live_overview_interval_s: float = Field(
        default=5.0, gt=0, description="Refresh period of the transfer overview."
    )
    live_debounce_s: float = Field(
        default=0.25,
        ge=0,
        description="Pause that folds a burst of events into one recomputation.",
    )
    history_interval_s: float = Field(
        default=10.0,
        ge=1,
        description="The console's charts: one sample of the site status (buffer depth, accept"
        " and drain rates, replica lag, oldest pending age) this often, kept in the site's"
        " Redis (in each process where the site has none), one per period for the site.",
    )
    history_retention_s: int = Field(
        default=6 * 3600,
        ge=60,
        le=7 * 24 * 3600,
        description="How far back those samples reach: retention / interval samples at most.",
    )
