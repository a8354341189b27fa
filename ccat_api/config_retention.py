"""How long what a write leaves behind is kept: a transaction's status, an Idempotency-Key's
answer and tombstone, main's applied_transactions rows, and how often main prunes them. A
group of settings that ``config.Settings`` inherits (its one source of defaults, like every
other setting)."""

from __future__ import annotations

from pydantic import BaseModel, Field


class RetentionSettings(BaseModel):
    tx_status_ttl_s: int = Field(
        default=7 * 24 * 3600,
        ge=60,
        description="How long a transaction's status stays readable after it became visible"
        " (operators look transactions up long after they drained).",
    )
    idempotency_ttl_s: int = Field(
        default=7 * 24 * 3600,
        ge=60,
        description="How long an Idempotency-Key answer is remembered (then, at main, a"
        " tombstone: a retry of the key is refused with a 409 naming it).",
    )
    idempotency_tombstone_ttl_s: int = Field(
        default=365 * 24 * 3600,
        ge=60,
        description="Main site: how long a used Idempotency-Key stays refused once its answer"
        " is gone. After this a retry of the key is a new request.",
    )
    retention_horizon_s: int = Field(
        default=30 * 24 * 3600,
        ge=60,
        description="Main site: applied_transactions rows older than this, and below their"
        " site's reported watermark, are pruned; a replay of one is still refused.",
    )
    prune_interval_s: float = Field(
        default=3600.0,
        ge=0,
        description="Main site: how often the gateway prunes applied_transactions and"
        " idempotency_records (0: never; run `ccat-api prune` from cron instead).",
    )
