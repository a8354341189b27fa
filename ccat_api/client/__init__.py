"""The Python SDK for the ccat_api gateway, used by instrument software at the observatory.

Typed methods for the critical writes and the main reads, a synchronous ``Client`` and an
asyncio ``AsyncClient`` with the same methods, automatic Idempotency-Keys, bounded retries
(transport failures, 429 and 502/503/504 with Retry-After), ``wait_visible``, an optional spool
that keeps writes on the instrument's disk while the gateway is away. Imports no server code
beyond the pure pydantic schemas, so it is light to install on instrument machines.
"""

from ccat_api.client import models
from ccat_api.client.aio import AsyncClient
from ccat_api.client.delivery import FlushReport, SpoolOptions
from ccat_api.client.errors import (
    ApiError,
    ClientError,
    ConnectionFailed,
    SpoolError,
    SpoolFull,
    TransactionFailed,
    VisibilityTimeout,
    WaitError,
    WriteSpooled,
)

# Every model: models.__all__ is the one list of them.
from ccat_api.client.models import *  # noqa: F403
from ccat_api.client.retry import RetryEvent, RetryPolicy
from ccat_api.client.spool_records import SpoolStatus
from ccat_api.client.sync import Client

__all__ = [
    "ApiError",
    "AsyncClient",
    "Client",
    "ClientError",
    "ConnectionFailed",
    "FlushReport",
    "RetryEvent",
    "RetryPolicy",
    "SpoolError",
    "SpoolFull",
    "SpoolOptions",
    "SpoolStatus",
    "TransactionFailed",
    "VisibilityTimeout",
    "WaitError",
    "WriteSpooled",
]
__all__ += models.__all__
