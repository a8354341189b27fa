"""The gateway's own bookkeeping in main: what was applied, who may replay, idempotency."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any

from sqlalchemy import BigInteger, DateTime, Index, Integer, Text
from sqlalchemy.dialects.postgresql import JSONB, UUID
from sqlalchemy.orm import Mapped, mapped_column

from ccat_api.db.models.base import Base, utc_now_column


class AppliedTransaction(Base):
    """Transactions applied on main; the replay skips ids already here. Rows older than the
    retention horizon and below their site's watermark are pruned (``db/pruning.py``)."""

    __tablename__ = "applied_transactions"
    __table_args__ = (Index("ix_applied_transactions_site_applied_at", "site", "applied_at"),)
    tx_id: Mapped[uuid.UUID] = mapped_column(UUID(as_uuid=True), primary_key=True)
    site: Mapped[str] = mapped_column(Text)
    seq: Mapped[int] = mapped_column(BigInteger)
    applied_at: Mapped[datetime] = utc_now_column()


class ReplayFence(Base):
    """Per-site lease epoch: a processor whose lease was taken over cannot apply anything."""

    __tablename__ = "replay_fences"
    site: Mapped[str] = mapped_column(Text, primary_key=True)
    epoch: Mapped[int] = mapped_column(BigInteger)
    updated_at: Mapped[datetime] = utc_now_column()


class IdempotencyRecord(Base):
    """Idempotency answers for direct writes at the main site (secondary sites use Redis).
    After ``idempotency_ttl_s`` the response goes (NULL: a tombstone, refusing the key)."""

    __tablename__ = "idempotency_records"
    __table_args__ = (Index("ix_idempotency_records_created_at", "created_at"),)
    principal: Mapped[str] = mapped_column(Text, primary_key=True)
    key: Mapped[str] = mapped_column(Text, primary_key=True)
    request_hash: Mapped[str] = mapped_column(Text)
    status_code: Mapped[int] = mapped_column(Integer)
    response: Mapped[dict[str, Any] | None] = mapped_column(JSONB)
    created_at: Mapped[datetime] = utc_now_column()


class ReplayWatermark(Base):
    """Per site: the lowest seq it may still replay (``low_seq``, reported by its processor),
    and the bound of what retention pruned: a transaction with seq below ``pruned_below_seq``
    built before ``pruned_before`` is already applied (ccat_apply_batch)."""

    __tablename__ = "replay_watermarks"
    site: Mapped[str] = mapped_column(Text, primary_key=True)
    low_seq: Mapped[int] = mapped_column(BigInteger)
    reported_at: Mapped[datetime] = utc_now_column()
    pruned_below_seq: Mapped[int] = mapped_column(BigInteger, server_default="0")
    pruned_before: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))


class EnvelopeVersion(Base):
    """An envelope schema version main applies (``retired_at`` NULL) or applied once.

    Migrations register a version when they change what envelopes may name, and retire the
    old one in their contract step (``db.contract``); a batch of a retired or unknown version
    is held at its site, never dead-lettered."""

    __tablename__ = "envelope_versions"
    version: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=False)
    note: Mapped[str] = mapped_column(Text)
    registered_at: Mapped[datetime] = utc_now_column()
    retired_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))


class SiteBacklog(Base):
    """What each site's processor last said it holds: its code's envelope version, the oldest
    version still pending there and how many transactions are pending."""

    __tablename__ = "site_backlogs"
    site: Mapped[str] = mapped_column(Text, primary_key=True)
    code_version: Mapped[int] = mapped_column(Integer)
    oldest_pending_version: Mapped[int | None] = mapped_column(Integer)
    pending: Mapped[int] = mapped_column(BigInteger)
    reported_at: Mapped[datetime] = utc_now_column()
