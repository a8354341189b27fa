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
    # The site's Redis memory (INFO memory) against its maxmemory (None: no limit), and
    # whether critical writes are refused for it (``buffer_max_memory_fraction``).
    memory_used_bytes: int | None = None
    memory_max_bytes: int | None = None
    memory_used_fraction: float | None = None
    near_capacity: bool = False


class ReplicaStatus(BaseModel):
    ok: bool
    error: str | None = None
    receive_lsn: int | None = None
    replay_lsn: int | None = None
    # What main has written that has not crossed the WAN yet (bytes), and what has crossed
    # but is not replayed (bytes). While some waits, apply_lag_s is the time since the last
    # replayed commit was made on main (it includes WAN transit and clock skew); 0 when
    # nothing waits to be replayed, however long main has been idle.
    receive_lag_bytes: int | None = None
    apply_lag_bytes: int | None = None
    apply_lag_s: float | None = None
    # One-way time of the last WAL message across the WAN, and how long ago it came.
    wan_delay_s: float | None = None
    since_wal_message_s: float | None = None


class RedisStatus(BaseModel):
    ok: bool
    error: str | None = None


class SiteStatus(BaseModel):
    site: str
    site_type: str
    sampled_at: float
    main: dict[str, Any]
    replica: ReplicaStatus | None
    # None at a main site (no buffer), or while the buffer cannot be read: then ``redis``
    # says why, and ``processor`` (reported through Redis) is None too.
    buffer: BufferStatus | None
    processor: dict[str, str] | None
    # Site-wide counters kept in Redis (accepted, applied, failed, visible, batches, ...);
    # empty while Redis is down.
    counters: dict[str, int]
    # The site's Redis as the sample found it; None where the site has none.
    redis: RedisStatus | None = None
    # Why the site needs an operator's look (/health's ``degraded``, and the buffer near
    # capacity): writes refused by the durability check, a site worker loop that crashed and
    # was restarted.
    degraded: list[str] = []


class HistorySample(BaseModel):
    """The site at the start of one sampling period (``at``), for the console's charts."""

    at: float
    # None where the site keeps no buffer (main) or its Redis did not answer.
    depth: int | None = None
    oldest_pending_age_s: float | None = None
    # Site-wide counters, and the rates between the previous period's sample and this one
    # (None for the first sample after a gap).
    accepted: int | None = None
    applied: int | None = None
    accept_rate_tx_s: float | None = None
    drain_rate_tx_s: float | None = None
    # The buffer's depth at this sample's drain rate; None while nothing drains.
    estimated_drain_s: float | None = None
    replica_apply_lag_s: float | None = None
    main_ok: bool | None = None


class SiteHistory(BaseModel):
    site: str
    interval_s: float
    retention_s: int
    # Oldest first.
    samples: list[HistorySample]


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
    # The Alembic revision this code was written for, and the one its database is at (None
    # when the database did not answer at start-up), with the verdict in words.
    schema_revision: str | None
    database_revision: str | None = None
    envelope_version: int | None = None
    schema_check: str | None = None
    processor_in_gateway: bool
