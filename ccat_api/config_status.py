"""When ``ccat-api status`` calls a site warning (exit 1) or critical (exit 2): a group of
settings that ``config.Settings`` inherits (its one source of defaults, like every other
setting). The command reads only this group, so a monitoring host needs no secrets or database
URLs in its configuration; its options override each value for one run."""

from __future__ import annotations

from pydantic import BaseModel, Field


class StatusSettings(BaseModel):
    status_warn_pending_age_s: float = Field(
        default=300.0,
        gt=0,
        description="`ccat-api status` warns when the oldest pending write is older.",
    )
    status_critical_pending_age_s: float = Field(
        default=3600.0,
        gt=0,
        description="`ccat-api status` is critical when the oldest pending write is older.",
    )
    # A secondary site is built to ride out a WAN outage, so a short one is only a warning.
    status_critical_main_unreachable_s: float = Field(
        default=900.0,
        gt=0,
        description="`ccat-api status` is critical when a secondary site has not reached main"
        " for longer (shorter: a warning).",
    )
    status_critical_dead_letters: int = Field(
        default=0,
        ge=0,
        description="`ccat-api status` is critical when more dead letters than this wait.",
    )
    status_warn_replica_lag_s: float = Field(
        default=300.0,
        gt=0,
        description="`ccat-api status` warns when the replica's apply lag is longer.",
    )
    # Below the gateway's own refusal point (buffer_max_memory_fraction, 0.9 by default).
    status_warn_memory_fraction: float = Field(
        default=0.75,
        gt=0,
        le=1,
        description="`ccat-api status` warns when the buffer's Redis uses more of its"
        " maxmemory (below buffer_max_memory_fraction, where writes are refused).",
    )
