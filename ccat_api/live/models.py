"""What the site status says, as pure pydantic models: the gateway sends them (REST, the
buffer stream, metrics) and the SDK and CLI read them, without importing server code."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel


class BufferStatus(BaseModel):
    depth: int
    oldest_pending_age_s: float | None
    awaiting_replica: int
    dead_letters: int
    accept_rate_tx_s: float | None
    drain_rate_tx_s: float | None
    # None: nothing is draining (main unreachable, or no rate measured yet) while work waits.
    estimated_drain_s: float | None


class ReplicaStatus(BaseModel):
    ok: bool
    error: str | None = None
    receive_lsn: int | None = None
    replay_lsn: int | None = None
    # What main has written that has not crossed the WAN yet (bytes), and what has crossed
    # but is not replayed (bytes, and the age of the oldest such commit).
    receive_lag_bytes: int | None = None
    apply_lag_bytes: int | None = None
    apply_lag_s: float | None = None
    # One-way time of the last WAL message across the WAN, and how long ago it came.
    wan_delay_s: float | None = None
    since_wal_message_s: float | None = None


class SiteStatus(BaseModel):
    site: str
    site_type: str
    sampled_at: float
    main: dict[str, Any]
    replica: ReplicaStatus | None
    buffer: BufferStatus | None
    processor: dict[str, str] | None
    # Site-wide counters kept in Redis (accepted, applied, failed, visible, batches, ...).
    counters: dict[str, int]


class BufferStats(BaseModel):
    depth: int
    oldest_pending_age_s: float | None
    awaiting_replica: int
    dead_letters: int
    processor: dict[str, str]


class SiteInfo(BaseModel):
    site_name: str
    site_type: Literal["main", "secondary"]
    critical_writes: str
    reads: str
    schema_revision: str | None
    processor_in_gateway: bool
