"""Waiting until a write shows in the site's reads, for either client.

At a secondary site a transaction is done when the local replica has replayed it
(``visible``); the main site applies writes directly and has no replica lag, so there
``applied`` is done. ``failed`` (a dead letter) and ``discarded`` end the wait with an error.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from uuid import UUID

from ccat_api.client.errors import TransactionFailed, VisibilityTimeout
from ccat_api.client.models import SiteInfo, TransactionState, WriteResult
from ccat_api.client.operations import Operations
from ccat_api.client.program import Pause, Program

Transaction = UUID | str | WriteResult


@dataclass
class SiteKind:
    """What a client learnt of its site's kind, kept for its next waits."""

    main: bool | None = None


class VisibilityWait:
    """The bookkeeping of one wait."""

    def __init__(self, tx: Transaction, *, timeout_s: float, poll_interval_s: float) -> None:
        if timeout_s < 0 or poll_interval_s <= 0:
            raise ValueError("timeout_s must be >= 0 and poll_interval_s > 0")
        self.tx_id = str(tx.tx_id if isinstance(tx, WriteResult) else tx)
        # A write the gateway answered "applied" was made at a main site.
        self.main_site_hint = isinstance(tx, WriteResult) and tx.status == "applied"
        self.timeout_s = timeout_s
        self.poll_interval_s = poll_interval_s
        self.deadline = time.monotonic() + timeout_s

    @staticmethod
    def needs_site_type(state: TransactionState) -> bool:
        """Only ``applied`` means different things at the two kinds of site."""
        return state.state == "applied"

    def done(self, state: TransactionState, *, main_site: bool) -> bool:
        if state.state == "visible" or (state.state == "applied" and main_site):
            return True
        if state.is_dead:
            why = f": {state.error or state.last_error}" if state.error or state.last_error else ""
            raise TransactionFailed(f"transaction {self.tx_id} is {state.state}{why}", state)
        return False

    def pause_s(self, state: TransactionState) -> float:
        """How long to sleep before the next poll; raises once the time is up."""
        remaining = self.deadline - time.monotonic()
        if remaining <= 0:
            raise VisibilityTimeout(
                f"transaction {self.tx_id} not visible within {self.timeout_s:g} s"
                f" (still {state.state})",
                state,
            )
        return min(self.poll_interval_s, remaining)


def wait_for_visibility(wait: VisibilityWait, site: SiteKind) -> Program[TransactionState]:
    """Poll the transaction until ``wait`` is done with it."""
    if wait.main_site_hint:
        site.main = True
    while True:
        state: TransactionState = yield Operations.get_transaction.build(wait.tx_id)
        if wait.needs_site_type(state) and site.main is None:
            info: SiteInfo = yield Operations.site_info.build()
            site.main = info.site_type == "main"
        if wait.done(state, main_site=bool(site.main)):
            return state
        yield Pause(wait.pause_s(state))
