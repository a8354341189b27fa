"""The SDK's inputs and outputs, as pydantic models.

Request bodies and most answers are the server's own schemas from ``ccat_api.domain.schemas``
(pure pydantic, no server dependencies), so a body the gateway would refuse for its shape is
refused here first.
"""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, Field

from ccat_api.domain.schemas import (
    ExecutedObsUnitDetails,
    ExecutedObsUnitFinish,
    ExecutedObsUnitRead,
    ExecutedObsUnitStart,
    PackageDetails,
    PageRead,
    RawDataFileBulkCreate,
    RawDataFileCreate,
    RawDataFileFields,
    RawDataFileRead,
    RawDataPackageCreate,
    RawDataPackageFinalize,
    RawDataPackageRead,
    RawDataPackageWithFiles,
    RetryResult,
    RouteCounts,
    TransactionRead,
    TransferCreate,
    TransferLogCreate,
    TransferRead,
    TransferUpdate,
    WriteAccepted,
)
from ccat_api.domain.schemas import Overview as TransferOverview
from ccat_api.live.models import BufferStats, SiteInfo

__all__ = [
    "BufferStats",
    "ExecutedObsUnitDetails",
    "ExecutedObsUnitFinish",
    "ExecutedObsUnitRead",
    "ExecutedObsUnitStart",
    "Health",
    "PackageDetails",
    "Page",
    "RawDataFileBulkCreate",
    "RawDataFileCreate",
    "RawDataFileFields",
    "RawDataFileRead",
    "RawDataPackageCreate",
    "RawDataPackageFinalize",
    "RawDataPackageRead",
    "RawDataPackageWithFiles",
    "RetryResult",
    "RouteCounts",
    "SiteInfo",
    "TransactionState",
    "TransferCreate",
    "TransferLogCreate",
    "TransferOverview",
    "TransferRead",
    "TransferUpdate",
    "WriteResult",
]

Page = PageRead
"""A list read: ``items``, ``total``, ``limit``, ``offset``."""

# --- answers ---------------------------------------------------------------------------------


class WriteResult(WriteAccepted):
    """The gateway's answer to a critical write, plus how the SDK got it."""

    http_status: int = Field(description="201 for a creation, 200 for a change")
    attempts: int = Field(default=1, description="Requests sent, retries included")
    idempotency_key: str = Field(description="The key every attempt carried")


class TransactionState(TransactionRead):
    """``state``: buffered -> applied -> visible, or failed (dead letter) / discarded."""

    @property
    def is_visible(self) -> bool:
        return self.state == "visible"

    @property
    def is_dead(self) -> bool:
        return self.state in ("failed", "discarded")


class Health(BaseModel):
    """``ok`` is false when the site cannot take writes now (the gateway answered 503)."""

    ok: bool
    report: dict[str, Any]
