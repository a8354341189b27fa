"""Routes for plain resources (reference data written at main): list with filters, sorting
and offset pagination with totals, get by id (404), create, update and optionally delete; and
the lists of records the observatory writes (``Listing``), read the same way.

One declaration per resource keeps list semantics identical everywhere. This module does not
use postponed annotations: the endpoint functions are made here, and FastAPI reads their
parameter types from the closure.
"""

import functools
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from enum import Enum
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Query
from pydantic import BaseModel

from ccat_api.api.deps import Authorize, ReadAccess, ReaderDep, RuntimeDep
from ccat_api.api.pages import Limit, Offset, read_page
from ccat_api.api.responses import READ_CODES, documented, errors, found, read_list, read_one
from ccat_api.auth.identity import Identity
from ccat_api.auth.permissions import Permission
from ccat_api.buffering.envelope import new_uuid7
from ccat_api.buffering.query import Condition, Eq, NameLike, OneOf, OrderBy, Page
from ccat_api.direct import rows
from ccat_api.errors import Unprocessable
from ccat_api.runtime import Runtime
from ccat_api.schemas.common import PageRead
from ccat_api.schemas.inputs import DecimalDigits, IdParam, Uuid

# (runtime, the values to write, the current row or None when creating): may refuse or adjust.
Validator = Callable[[Runtime, dict[str, Any], dict[str, Any] | None], Awaitable[None]]


class ListFilters(BaseModel):
    """Equality filters; a field named ``q`` searches the ``name`` column instead."""


@dataclass
class Resource:
    path: str
    table: str
    noun: str
    read: type[BaseModel]
    filters: type[BaseModel] = ListFilters
    order_fields: tuple[str, ...] = ("id",)
    create: type[BaseModel] | None = None
    update: type[BaseModel] | None = None
    deletable: bool = False
    write_permission: Permission = Permission.MANAGE_CATALOG
    # UUID-keyed resources get their id here (UUIDv7); integer ones from a sequence.
    uuid_ids: bool = False
    # Checks a create (current None) or an update (current row) beyond the body's own shape.
    validate: Validator | None = None
    tags: list[str] = field(default_factory=list)
    # One record as the API answers it, for the OpenAPI document (see api/examples.py):
    # required, so a resource cannot be declared without one.
    example: dict[str, Any] = field(kw_only=True)


@dataclass
class Listing:
    """A list of records the observatory writes (read merged: buffered ones too), in the
    order its route declares (a Literal of columns, ``-`` for descending)."""

    path: str
    # The endpoint's name, from which FastAPI makes the operation id.
    name: str
    table: str
    read: type[BaseModel]
    filters: type[BaseModel]
    order: Any
    default_order: str
    summary: str
    example: dict[str, Any] = field(kw_only=True)
    tags: list[str] = field(default_factory=list, kw_only=True)
    max_offset: int = field(default=1_000_000, kw_only=True)


def conditions(filters: BaseModel) -> list[Condition]:
    """Equality per filter given; a list: any of its values; ``q``: part of the name."""
    found: list[Condition] = []
    for name, value in filters.model_dump(exclude_none=True).items():
        if name == "q":
            found.append(NameLike("name", value))
        elif isinstance(value, list):
            found.append(OneOf(name, tuple(v.value if isinstance(v, Enum) else v for v in value)))
        else:
            found.append(Eq(name, value))
    return found


def ordering(order: str, allowed: tuple[str, ...]) -> list[OrderBy]:
    name = order.lstrip("-")
    if name not in allowed:
        raise Unprocessable(
            f"order: one of {', '.join(allowed)} (prefix - for descending)", field="order"
        )
    return [OrderBy(name, descending=order.startswith("-"))]


def page_of_rows(read: type[BaseModel], page: Page) -> dict[str, Any]:
    return {
        "items": [read.model_validate(r).model_dump(mode="json") for r in page.items],
        "total": page.total,
        "limit": page.limit,
        "offset": page.offset,
    }


def add_resource(router: APIRouter, spec: Resource) -> None:
    read, filters_model = spec.read, spec.filters
    key_type: Any = Uuid if spec.uuid_ids else IdParam
    writer = Annotated[Identity, Depends(Authorize(spec.write_permission))]
    tags: list[str | Any] = list(spec.tags) or [spec.noun + "s"]
    example = spec.example

    async def list_items(
        reader: ReaderDep,
        _: ReadAccess,
        filters: Annotated[filters_model, Query()],  # type: ignore[valid-type]
        order: str = spec.order_fields[0],
        limit: Limit = 100,
        offset: Offset = 0,
    ) -> Any:
        page = await reader.page(
            spec.table,
            conditions(filters),
            ordering(order, spec.order_fields),
            limit=limit,
            offset=offset,
        )
        return page_of_rows(read, page)

    router.add_api_route(
        spec.path,
        list_items,
        methods=["GET"],
        response_model=PageRead[read],  # type: ignore[valid-type]
        responses=read_list(example),
        summary=f"List {spec.noun}s (filters, order={'|'.join(spec.order_fields)}, pages)",
        tags=tags,
    )

    async def get_item(item_id: key_type, reader: ReaderDep, _: ReadAccess) -> Any:
        return read.model_validate(await found(reader, spec.table, item_id, spec.noun))

    router.add_api_route(
        spec.path + "/{item_id}",
        get_item,
        methods=["GET"],
        response_model=read,
        responses=read_one(example),
        summary=f"One {spec.noun}",
        tags=tags,
    )

    if spec.create is not None:
        create_model = spec.create

        async def create_item(
            body: create_model,  # type: ignore[valid-type]
            runtime: RuntimeDep,
            _: writer,
        ) -> Any:
            values = BaseModel.model_dump(body)
            if spec.uuid_ids:
                values["id"] = new_uuid7()
            if spec.validate is not None:
                await spec.validate(runtime, values, None)
            return read.model_validate(await rows.insert_row(runtime.main_db, spec.table, values))

        router.add_api_route(
            spec.path,
            create_item,
            methods=["POST"],
            status_code=201,
            response_model=read,
            responses=documented(example, 401, 403, 409, 422, 503, status=201),
            summary=f"Create a {spec.noun} (written to main)",
            tags=tags,
        )

    if spec.update is not None:
        update_model = spec.update

        async def update_item(
            item_id: key_type,
            body: update_model,  # type: ignore[valid-type]
            runtime: RuntimeDep,
            _: writer,
        ) -> Any:
            changes = BaseModel.model_dump(body, exclude_unset=True)
            # Checked against main's row, locked, not against this site's (lagging) replica.
            check = functools.partial(spec.validate, runtime, changes) if spec.validate else None
            return read.model_validate(
                await rows.update_row(runtime.main_db, spec.table, item_id, changes, check)
            )

        router.add_api_route(
            spec.path + "/{item_id}",
            update_item,
            methods=["PATCH"],
            response_model=read,
            responses=documented(example, *READ_CODES, 404, 409),
            summary=f"Change a {spec.noun} (written to main)",
            tags=tags,
        )

    if spec.deletable:

        async def delete_item(
            item_id: key_type,
            runtime: RuntimeDep,
            _: writer,
        ) -> None:
            await rows.delete_row(runtime.main_db, spec.table, item_id)

        router.add_api_route(
            spec.path + "/{item_id}",
            delete_item,
            methods=["DELETE"],
            status_code=204,
            responses=errors(*READ_CODES, 404, 409),
            summary=f"Delete a {spec.noun} no record refers to (written to main)",
            tags=tags,
        )


def add_listing(router: APIRouter, spec: Listing) -> None:
    filters_model, order_type = spec.filters, spec.order

    async def list_records(
        reader: ReaderDep,
        _: ReadAccess,
        filters: Annotated[filters_model, Query()],  # type: ignore[valid-type]
        order: Annotated[order_type, Query()] = spec.default_order,  # type: ignore[valid-type]
        limit: Limit = 100,
        offset: Annotated[int, Query(ge=0, le=spec.max_offset), DecimalDigits] = 0,
    ) -> Any:
        where = conditions(filters)
        return await read_page(
            reader, spec.read, spec.table, where, order, limit=limit, offset=offset
        )

    router.add_api_route(
        spec.path,
        list_records,
        methods=["GET"],
        name=spec.name,
        response_model=PageRead[spec.read],  # type: ignore[name-defined]
        responses=read_list(spec.example),
        summary=spec.summary,
        tags=list(spec.tags),
    )
