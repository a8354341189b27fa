"""The Python SDK for the ccat_api gateway, used by instrument software at the observatory.

Typed methods for the critical writes and the main reads, a synchronous ``Client`` and an
asyncio ``AsyncClient`` with the same methods, automatic Idempotency-Keys, bounded retries
(transport failures, 502/503/504 with Retry-After) and ``wait_visible``. Imports no server
code beyond the pure pydantic schemas, so it is light to install on instrument machines.
"""

from ccat_api.client.aio import AsyncClient
from ccat_api.client.errors import (
    ApiError,
    ClientError,
    ConnectionFailed,
    TransactionFailed,
    VisibilityTimeout,
    WaitError,
)
from ccat_api.client.models import (
    BufferStats,
    ExecutedObsUnitDetails,
    ExecutedObsUnitFinish,
    ExecutedObsUnitRead,
    ExecutedObsUnitStart,
    Health,
    PackageStatus,
    Page,
    PhysicalCopyCreate,
    PhysicalCopyRead,
    PhysicalCopyUpdate,
    RawDataFileCreate,
    RawDataFileFields,
    RawDataFileRead,
    RawDataPackageCreate,
    RawDataPackageRead,
    RawDataPackageWithFiles,
    RetryResult,
    SiteInfo,
    TransactionState,
    TransferCreate,
    TransferLogCreate,
    TransferLogRead,
    TransferOverview,
    TransferRead,
    TransferStatus,
    TransferUpdate,
    WriteResult,
)
from ccat_api.client.retry import RetryEvent, RetryPolicy
from ccat_api.client.sync import Client
from ccat_api.live.models import BufferStatus, ReplicaStatus, SiteStatus

__all__ = [
    "ApiError",
    "AsyncClient",
    "BufferStats",
    "BufferStatus",
    "Client",
    "ClientError",
    "ConnectionFailed",
    "ExecutedObsUnitDetails",
    "ExecutedObsUnitFinish",
    "ExecutedObsUnitRead",
    "ExecutedObsUnitStart",
    "Health",
    "PackageStatus",
    "Page",
    "PhysicalCopyCreate",
    "PhysicalCopyRead",
    "PhysicalCopyUpdate",
    "RawDataFileCreate",
    "RawDataFileFields",
    "RawDataFileRead",
    "RawDataPackageCreate",
    "RawDataPackageRead",
    "RawDataPackageWithFiles",
    "ReplicaStatus",
    "RetryEvent",
    "RetryPolicy",
    "RetryResult",
    "SiteInfo",
    "SiteStatus",
    "TransactionFailed",
    "TransactionState",
    "TransferCreate",
    "TransferLogCreate",
    "TransferLogRead",
    "TransferOverview",
    "TransferRead",
    "TransferStatus",
    "TransferUpdate",
    "VisibilityTimeout",
    "WaitError",
    "WriteResult",
]
