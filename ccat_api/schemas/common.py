"""What every area's answers share: the answer to a critical write, a page of a list,
a transaction's state."""

from __future__ import annotations

from typing import Any, Generic, Literal, TypeVar
from uuid import UUID

from pydantic import BaseModel, ConfigDict, Field


class WriteAccepted(BaseModel):
    """The answer to every critical write, at either kind of site."""

    id: UUID
    tx_id: UUID
    status: Literal["buffered", "applied"]
    ids: list[UUID] = Field(default_factory=list, description="Every record this write created.")


class ReadModel(BaseModel):
    model_config = ConfigDict(from_attributes=True)


T = TypeVar("T")


class PageRead(BaseModel, Generic[T]):
    items: list[T]
    total: int
    limit: int
    offset: int


class TransactionRead(BaseModel):
    tx_id: str
    state: str
    seq: int
    created_at: float | None = Field(description="Unix time (s) of acceptance")
    applied_at: float | None
    visible_at: float | None
    failed_at: float | None
    lsn: int | None = Field(description="Commit LSN on main, as a byte position")
    attempts: int
    last_error: str | None
    error_code: str | None
    error: str | None
    depends_on: list[str]
    records: list[str]
    conflict: dict[str, Any] | None = Field(
        default=None,
        description="For a conflict (error_code 'conflict'): model, id, base_version (the"
        " version the site's update was based on), main_version, main (main's row now) and"
        " change (the site's update)",
    )


class RetryResult(BaseModel):
    retried: list[str] = Field(description="The dead letters re-buffered, in order")
