"""Transaction status by tx_id, listings by state, and dead-letter retry/discard (admin)."""

from __future__ import annotations

from dataclasses import asdict
from typing import Annotated, Literal

import sqlalchemy as sa
from fastapi import APIRouter, Query

from ccat_api.api import examples
from ccat_api.api.deps import BufferOperateAccess, BufferReadAccess, LedgerDep, RuntimeDep
from ccat_api.api.pages import Limit, Offset
from ccat_api.api.responses import READ_CODES, documented, errors, read_list, read_one
from ccat_api.api.routing import CheckedRoute
from ccat_api.db.models import AppliedTransaction
from ccat_api.errors import NotFound
from ccat_api.schemas.common import PageRead, RetryResult, TransactionRead
from ccat_api.schemas.inputs import Uuid

router = APIRouter(route_class=CheckedRoute, prefix="/transactions", tags=["transactions"])


@router.get(
    "/{tx_id}",
    response_model=TransactionRead,
    responses=read_one(examples.TRANSACTION),
    summary="State of one transaction: buffered, applied (with LSN), visible, failed",
)
async def get_transaction(tx_id: Uuid, runtime: RuntimeDep, _: BufferReadAccess) -> TransactionRead:
    if runtime.ledger is not None:
        status = await runtime.ledger.get(str(tx_id))
        if status is None:
            raise NotFound(f"transaction {tx_id} not found (or past its retention)")
        return TransactionRead.model_validate(asdict(status))
    # The main site applies directly: a transaction it knows is one it applied.
    async with runtime.read_db.connect() as conn:
        row = (
            await conn.execute(
                sa.select(AppliedTransaction).where(AppliedTransaction.tx_id == tx_id)
            )
        ).one_or_none()
    if row is None:
        raise NotFound(f"transaction {tx_id} not found")
    return TransactionRead(
        tx_id=str(tx_id), state="applied", seq=row.seq, created_at=None,
        applied_at=row.applied_at.timestamp(), visible_at=None, failed_at=None, lsn=None,
        attempts=1, last_error=None, error_code=None, error=None, depends_on=[], records=[],
    )  # fmt: skip


@router.get(
    "",
    response_model=PageRead[TransactionRead],
    responses=read_list(examples.TRANSACTION, 404),
    summary="Transactions of this site, newest first (state=failed lists dead letters; 404 at"
    " the main site, which keeps no buffer)",
)
async def list_transactions(
    _: BufferReadAccess,
    ledger: LedgerDep,
    state: Annotated[
        Literal["buffered", "applied", "visible", "failed", "discarded"] | None, Query()
    ] = None,
    limit: Limit = 100,
    offset: Offset = 0,
) -> PageRead[TransactionRead]:
    found, total = await ledger.recent(state, limit=limit, offset=offset)
    return PageRead[TransactionRead](
        items=[TransactionRead.model_validate(asdict(s)) for s in found],
        total=total,
        limit=limit,
        offset=offset,
    )


@router.post(
    "/{tx_id}/retry",
    response_model=RetryResult,
    responses=documented(examples.RETRY_RESULT, *READ_CODES, 404, 409),
    summary="Re-buffer a dead letter and the dead letters that depended on it (admin)",
)
async def retry_transaction(
    _: BufferOperateAccess,
    tx_id: Uuid,
    ledger: LedgerDep,
    apply_anyway: Annotated[
        bool,
        Query(
            description="Resolve a conflict for the site's change: applied over main's row"
            " as it is now (a dead letter of another kind is a 409)"
        ),
    ] = False,
) -> RetryResult:
    return RetryResult(retried=await ledger.retry(str(tx_id), apply_anyway=apply_anyway))


@router.post(
    "/{tx_id}/discard",
    status_code=204,
    responses=errors(*READ_CODES, 404, 409),
    summary="Give up on a dead letter for good (admin)",
)
async def discard_transaction(_: BufferOperateAccess, tx_id: Uuid, ledger: LedgerDep) -> None:
    await ledger.discard(str(tx_id))
