"""The operations both clients offer: transactions and dead letters, the buffer, the site."""

from __future__ import annotations

from typing import Literal

import httpx

from ccat_api.client.call import Call, Id, path_id, read_call
from ccat_api.client.methods import operation
from ccat_api.client.models import (
    BufferStats,
    Health,
    Page,
    RetryResult,
    SiteInfo,
    SiteStatus,
    TransactionState,
)


class Operations:
    """A site's bookkeeping, for people and monitors (``read:buffer`` to look,
    ``operate:buffer`` to retry or discard)."""

    @operation
    def get_transaction(tx_id: Id) -> Call[TransactionState]:
        """A transaction's state: buffered, applied, visible, failed or discarded."""
        return read_call(f"/transactions/{path_id(tx_id)}", TransactionState)

    @operation
    def list_transactions(
        *,
        state: Literal["buffered", "applied", "visible", "failed", "discarded"] | None = None,
        limit: int | None = None,
        offset: int | None = None,
    ) -> Call[Page[TransactionState]]:
        """This site's transactions, newest first (a secondary site only)."""
        return read_call(
            "/transactions", Page[TransactionState], state=state, limit=limit, offset=offset
        )

    @operation
    def list_dead_letters(
        *, limit: int | None = None, offset: int | None = None
    ) -> Call[Page[TransactionState]]:
        """Transactions that failed permanently on main (GET /transactions?state=failed)."""
        return read_call(
            "/transactions", Page[TransactionState], state="failed", limit=limit, offset=offset
        )

    @operation
    def retry_transaction(tx_id: Id, *, apply_anyway: bool = False) -> Call[RetryResult]:
        """Re-buffer a dead letter and the dead letters depending on it (admin).
        ``apply_anyway`` resolves a conflict for the site's change, over main's row."""

        def parse(response: httpx.Response, _: int) -> RetryResult:
            return RetryResult.model_validate(response.json())

        # No Idempotency-Key on this route: only sent again when it cannot have arrived.
        return Call(
            "POST",
            f"/transactions/{path_id(tx_id)}/retry",
            parse,
            params={"apply_anyway": "true"} if apply_anyway else {},
            replay_safe=False,
        )

    @operation
    def discard_transaction(tx_id: Id) -> Call[None]:
        """Give up on a dead letter for good (admin)."""

        def parse(_: httpx.Response, __: int) -> None:
            return None

        return Call("POST", f"/transactions/{path_id(tx_id)}/discard", parse, replay_safe=False)

    @operation
    def buffer_stats() -> Call[BufferStats]:
        return read_call("/buffer-stats", BufferStats)

    @operation
    def site_info() -> Call[SiteInfo]:
        return read_call("/api/site/info", SiteInfo)

    @operation
    def site_status() -> Call[SiteStatus]:
        """Buffer depth and age, rates, estimated drain, replica lag, processor (read:buffer)."""
        return read_call("/api/site/status", SiteStatus)

    @operation
    def health() -> Call[Health]:
        """Reachability of main, replica and Redis, and the buffer. A 503 here is an answer
        (``ok`` false), not retried."""

        def parse(response: httpx.Response, _: int) -> Health:
            return Health(ok=response.is_success, report=response.json())

        return Call("GET", "/health", parse, answers=frozenset({503}))
