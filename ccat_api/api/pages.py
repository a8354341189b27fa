"""How a list route reads one page: its limit and offset parameters, its order, its equality
filters, and the page in the common envelope (``items``, ``total``, ``limit``, ``offset``),
merged over the replica and this site's buffer alike."""

from __future__ import annotations

from typing import Annotated, Any, TypeVar

from fastapi import Query
from pydantic import BaseModel

from ccat_api.buffering.query import Condition, Eq, OrderBy, Page
from ccat_api.buffering.reads import MergedReader
from ccat_api.schemas.common import PageRead
from ccat_api.schemas.inputs import DecimalDigits

ReadT = TypeVar("ReadT", bound=BaseModel)

Limit = Annotated[int, Query(ge=1, le=1000), DecimalDigits]
Offset = Annotated[int, Query(ge=0, le=1_000_000), DecimalDigits]


def ordered(order: str) -> list[OrderBy]:
    """``column`` ascending, ``-column`` descending."""
    return [OrderBy(order.lstrip("-"), descending=order.startswith("-"))]


def equal_to(**values: Any) -> list[Condition]:
    """An equality condition per filter the caller named (None: not named)."""
    return [Eq(column, value) for column, value in values.items() if value is not None]


def page_of(read_model: type[ReadT], page: Page) -> PageRead[ReadT]:
    return PageRead[read_model](  # type: ignore[valid-type]
        items=[read_model.model_validate(r) for r in page.items],
        total=page.total,
        limit=page.limit,
        offset=page.offset,
    )


async def read_page(
    reader: MergedReader,
    read_model: type[ReadT],
    table: str,
    where: list[Condition],
    order: str,
    *,
    limit: int,
    offset: int,
) -> PageRead[ReadT]:
    page = await reader.page(table, where, ordered(order), limit=limit, offset=offset)
    return page_of(read_model, page)
