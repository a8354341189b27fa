"""Reference data written at main (obs units, instrument modules); read-only here."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query

from ccat_api.api.deps import ReadAccess, ReaderDep
from ccat_api.api.responses import READ_ERRORS, page_of
from ccat_api.buffering.reads import Condition, Eq, OrderBy
from ccat_api.domain.schemas import InstrumentModuleRead, ObsUnitRead, PageRead

router = APIRouter(tags=["reference data"])

Limit = Annotated[int, Query(ge=1, le=1000)]
Offset = Annotated[int, Query(ge=0)]


@router.get(
    "/obs_units", response_model=PageRead[ObsUnitRead], responses=READ_ERRORS,
    summary="Obs units, optionally of one observing program or instrument",
)  # fmt: skip
async def list_obs_units(
    reader: ReaderDep,
    _: ReadAccess,
    observing_program_id: Annotated[int | None, Query(gt=0)] = None,
    instrument_id: Annotated[int | None, Query(gt=0)] = None,
    limit: Limit = 100,
    offset: Offset = 0,
) -> PageRead[ObsUnitRead]:
    where: list[Condition] = []
    if observing_program_id is not None:
        where.append(Eq("observing_program_id", observing_program_id))
    if instrument_id is not None:
        where.append(Eq("instrument_id", instrument_id))
    page = await reader.page("obs_units", where, [OrderBy("id")], limit=limit, offset=offset)
    return page_of(ObsUnitRead, page)


@router.get(
    "/instrument_modules", response_model=PageRead[InstrumentModuleRead], responses=READ_ERRORS,
    summary="Instrument modules, optionally of one instrument",
)  # fmt: skip
async def list_instrument_modules(
    reader: ReaderDep,
    _: ReadAccess,
    instrument_id: Annotated[int | None, Query(gt=0)] = None,
    limit: Limit = 100,
    offset: Offset = 0,
) -> PageRead[InstrumentModuleRead]:
    where: list[Condition] = []
    if instrument_id is not None:
        where.append(Eq("instrument_id", instrument_id))
    page = await reader.page(
        "instrument_modules", where, [OrderBy("id")], limit=limit, offset=offset
    )
    return page_of(InstrumentModuleRead, page)
