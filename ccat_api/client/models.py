"""The SDK's inputs and outputs, as pydantic models; ``__all__`` is what the package exports.

Request bodies and most answers are the server's own schemas from ``ccat_api.schemas``
(pure pydantic, no server dependencies), so a body the gateway would refuse for its shape is
refused here first.
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, Field

from ccat_api.live.models import BufferStats, BufferStatus, ReplicaStatus, SiteInfo, SiteStatus
from ccat_api.schemas.common import PageRead, RetryResult, TransactionRead, WriteAccepted
from ccat_api.schemas.observations import (
    ExecutedObsUnitDetails,
    ExecutedObsUnitFinish,
    ExecutedObsUnitRead,
    ExecutedObsUnitStart,
    PackageDetails,
)
from ccat_api.schemas.raw_data import (
    RawDataFileBulkCreate,
    RawDataFileCreate,
    RawDataFileFields,
    RawDataFileRead,
    RawDataPackageCreate,
    RawDataPackageFinalize,
    RawDataPackageRead,
    RawDataPackageWithFiles,
)
from ccat_api.schemas.transfers import Overview as TransferOverview
from ccat_api.schemas.transfers import (
    PhysicalCopyCreate,
    PhysicalCopyRead,
    PhysicalCopyUpdate,
    RouteCounts,
    TransferCreate,
    TransferLogCreate,
    TransferLogRead,
    TransferRead,
    TransferUpdate,
)

__all__ = [
    "BufferStats",
    "BufferStatus",
    "ExecutedObsUnitDetails",
    "ExecutedObsUnitFinish",
    "ExecutedObsUnitRead",
    "ExecutedObsUnitStart",
    "Health",
    "PackageDetails",
    "PackageStatus",
    "Page",
    "PhysicalCopyCreate",
    "PhysicalCopyRead",
    "PhysicalCopyUpdate",
    "RawDataFileBulkCreate",
    "RawDataFileCreate",
    "RawDataFileFields",
    "RawDataFileRead",
    "RawDataPackageCreate",
    "RawDataPackageFinalize",
    "RawDataPackageRead",
    "RawDataPackageWithFiles",
    "ReplicaStatus",
    "RetryResult",
    "RouteCounts",
    "SiteInfo",
    "SiteStatus",
    "TransactionState",
    "TransferCreate",
    "TransferLogCreate",
    "TransferLogRead",
    "TransferOverview",
    "TransferRead",
    "TransferStatus",
    "TransferUpdate",
    "WriteResult",
]

Page = PageRead
"""A list read: ``items``, ``total``, ``limit``, ``offset``."""

# The server's status enums live with its database models, which the SDK does not import;
# tests/unit/client checks that these stay the same.
PackageStatus = Literal["building", "complete", "transferring", "archived", "failed"]
TransferStatus = Literal["pending", "transferring", "completed", "failed"]

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
