"""Applies a batch of buffered transactions on main: the only writer of replayed data.

A batch costs one WAN round trip: ``CALL ccat_replay_batch`` runs ``ccat_apply_batch``,
commits (synchronously) and then reads ``pg_current_wal_flush_lsn()``, which is at or past
the batch's commit record; the tracker waits for the replica to replay up to that position.
The same call gives main's durable horizon: the flush position of its standbys
(``main_standby_names``), below which a failover of main cannot lose a commit. A procedure
may commit only outside a transaction block, so the connection never opens one.

The connection is kept across batches and never returned to a pool: a pool's reset query on
release would add a round trip per batch.
"""

from __future__ import annotations

import asyncio
import gc
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import asyncpg
import orjson

from ccat_api.buffering.envelope import SCHEMA_VERSION, BufferedTransaction
from ccat_api.buffering.holds import SchemaHold
from ccat_api.buffering.payload import build_payload
from ccat_api.db.revisions import (
    APPLIED_VERSIONS_SQL,
    RevisionCheck,
    applied_versions,
    check_revision,
    compare_revision,
)

LEASE_SUPERSEDED = "CCA01"
# Raised by ccat_apply_batch (db/sql): an envelope version main does not apply (not yet, or
# no longer), and a table or column that main and the envelope disagree on.
VERSION_NOT_APPLIED = "CCA02"
SCHEMA_DRIFT = "CCA03"
# SQLSTATE class 22: the input itself is unreadable (for example a NUL in JSON text).
DATA_EXCEPTION_CLASS = "22"


# One batch, its commit and the positions after it (db/sql/ccat_replay_batch.sql).
REPLAY_SQL = "CALL ccat_replay_batch($1, $2, $3::jsonb, $4::text[])"
# A new lease's fence and schema check in one statement, where main has all it reads (from
# revision 0008 on): over a 200 ms WAN each statement costs two round trips (prepare,
# execute), and the first batch after an outage waited for five of them. The versions come
# as text: asyncpg looks an integer array's type up in six more round trips the first time.
BEGIN_SQL = (
    "SELECT ccat_claim_fence($1, $2), (SELECT version_num FROM alembic_version),"  # noqa: S608
    f" ({APPLIED_VERSIONS_SQL})"
)

# Main's flush position, and the lowest flush position among its named standbys: a failover
# to any of them keeps every commit up to it. No standby named: main's own (durable at once);
# none of them connected: NULL (nothing is durable yet).
HORIZON_SQL = """
SELECT (pg_current_wal_flush_lsn() - '0/0'::pg_lsn)::bigint,
       CASE WHEN cardinality($1::text[]) = 0
            THEN (pg_current_wal_flush_lsn() - '0/0'::pg_lsn)::bigint
            ELSE (SELECT (min(flush_lsn) - '0/0'::pg_lsn)::bigint FROM pg_stat_replication
                   WHERE application_name = ANY($1::text[]))
       END
"""


class TransientReplayError(Exception):
    """Main is unreachable, slow or refusing for now; the batch is retried as it is."""


class LeaseSuperseded(Exception):
    """Main saw a newer lease epoch for this site: another processor took over."""

    def __init__(self, message: str, fence_epoch: int | None) -> None:
        super().__init__(message)
        self.fence_epoch = fence_epoch


class _UnreadableBatch(Exception):
    def __init__(self, sqlstate: str, message: str) -> None:
        super().__init__(message)
        self.sqlstate = sqlstate
        self.message = message


@dataclass
class BatchOutcome:
    applied: list[str] = field(default_factory=list)
    duplicates: list[str] = field(default_factory=list)
    failed: dict[str, tuple[str, str]] = field(default_factory=dict)
    # Failed as a conflict: main's row and the site's change, per tx_id (ccat_apply_batch).
    conflicts: dict[str, dict[str, Any]] = field(default_factory=dict)
    lsn: int = 0
    path: str = ""
    # Main's durable horizon when the batch was recorded; None: no standby had it in reach.
    durable_lsn: int | None = None


class BatchExecutor:
    def __init__(
        self,
        dsn: str,
        site: str,
        *,
        timeout_s: float,
        connect_timeout_s: float,
        statement_timeout_s: float,
        standby_names: Sequence[str] = (),
    ) -> None:
        self._dsn = dsn
        self._standby_names = list(standby_names)
        # Set with each new connection to main: after a failover it may be another server,
        # which the processor checks for commits it lost (``horizon.py``).
        self.reconnected = False
        self._site = site
        self._timeout_s = timeout_s
        self._connect_timeout_s = connect_timeout_s
        self._statement_timeout_s = statement_timeout_s
        self._conn: asyncpg.Connection | None = None

    def sibling(self) -> BatchExecutor:
        """Another executor for the same site and main, with a connection of its own: for
        what must not wait behind a batch on the WAN (``upkeep.py``'s reports)."""
        return BatchExecutor(
            self._dsn,
            self._site,
            timeout_s=self._timeout_s,
            connect_timeout_s=self._connect_timeout_s,
            statement_timeout_s=self._statement_timeout_s,
            standby_names=self._standby_names,
        )

    async def _connection(self) -> asyncpg.Connection:
        if self._conn is None or self._conn.is_closed():
            self.reconnected = True
            self._conn = await asyncpg.connect(
                self._dsn,
                timeout=self._connect_timeout_s,
                server_settings={
                    "application_name": f"ccat-processor-{self._site}",
                    "statement_timeout": str(int(self._statement_timeout_s * 1000)),
                    # The LSN we read after commit must cover the commit record on disk.
                    "synchronous_commit": "on",
                },
            )
        return self._conn

    async def apply(self, txs: Sequence[BufferedTransaction], epoch: int | None) -> BatchOutcome:
        try:
            return await self._apply_once(txs, epoch)
        except _UnreadableBatch as exc:
            return await self._isolate(txs, epoch, exc)

    async def fence(self, epoch: int) -> None:
        """Claim the site's fence on main before reading anything: from now on a deposed
        processor (lower epoch) cannot apply a batch, not even one it already holds."""
        await self._call(
            "SELECT ccat_claim_fence($1, $2)", self._site, epoch, what="main refused the fence"
        )

    async def check_schema(self) -> RevisionCheck:
        """Main's schema revision and contract against this code's (at each new lease)."""

        async def fetch_value(sql: str) -> object:
            return await self._call(sql, what="main did not say its schema revision")

        return await check_revision(fetch_value, SCHEMA_VERSION)

    async def begin(self, epoch: int) -> RevisionCheck:
        """``fence`` and then ``check_schema``, in one round trip on a main that has the
        contract; a main from before it (a table or function missing) is asked step by
        step, which also tells how far behind it is."""
        try:
            row = await self._call_row(BEGIN_SQL, self._site, epoch, what="main refused the fence")
        except TransientReplayError as exc:
            if not isinstance(
                exc.__cause__, asyncpg.UndefinedTableError | asyncpg.UndefinedFunctionError
            ):
                raise
            await self.fence(epoch)
            return await self.check_schema()
        _, revision, applied = row
        return compare_revision(revision, applied_versions(applied), SCHEMA_VERSION)

    async def ensure_connected(self) -> None:
        """Connect if there is no connection (which sets ``reconnected``); no round trip."""
        try:
            await asyncio.wait_for(self._connection(), self._timeout_s)
        except (OSError, TimeoutError, asyncpg.InterfaceError, asyncpg.PostgresError) as exc:
            await self.close()
            raise TransientReplayError(f"main unreachable: {type(exc).__name__}") from exc

    async def durable_lsn(self) -> int | None:
        """Main's durable horizon now (for transactions kept since their batch)."""
        _, durable = await self._call_row(HORIZON_SQL, self._standby_names, what="horizon")
        return None if durable is None else int(durable)

    async def missing(self, tx_ids: Sequence[str]) -> set[str]:
        """Which of ``tx_ids`` main has no record of having applied."""
        found = await self._call_rows(
            "SELECT tx_id::text FROM applied_transactions WHERE tx_id = ANY($1::uuid[])",
            list(tx_ids),
            what="main did not say what it applied",
        )
        return set(tx_ids) - {row[0] for row in found}

    async def report_watermark(self, epoch: int | None, low_seq: int) -> None:
        """Tell main the lowest seq this site may still send (retention prunes below it)."""
        await self._call(
            "SELECT ccat_report_watermark($1, $2, $3)",
            self._site,
            epoch,
            low_seq,
            what="main refused the watermark",
        )

    async def report_backlog(
        self, code_version: int, oldest_pending_version: int | None, pending: int
    ) -> None:
        """Tell main what this site still holds, for the contract step of migrations."""
        await self._call(
            "SELECT ccat_report_backlog($1, $2, $3, $4)",
            self._site,
            code_version,
            oldest_pending_version,
            pending,
            what="main refused the backlog report",
        )

    async def _isolate(
        self, txs: Sequence[BufferedTransaction], epoch: int | None, error: _UnreadableBatch
    ) -> BatchOutcome:
        """Main could not even read the batch (a data error in its parameters, which no
        per-transaction handler sees). Split it until the culprit stands alone, so only it,
        and what depends on it, becomes a dead letter; halves commit in order."""
        if len(txs) == 1:
            return BatchOutcome(failed={txs[0].envelope.tx_id: (error.sqlstate, error.message)})
        middle = len(txs) // 2
        first = await self.apply(txs[:middle], epoch)
        blocked = dict(first.failed)
        rest: list[BufferedTransaction] = []
        for tx in txs[middle:]:
            blocker = next((d for d in tx.deps if d in blocked), None)
            if blocker is None:
                rest.append(tx)
            else:
                blocked[tx.envelope.tx_id] = (
                    "dependency_failed",
                    f"depends on failed transaction {blocker}",
                )
        second = await self.apply(rest, epoch) if rest else BatchOutcome(lsn=first.lsn)
        return BatchOutcome(
            applied=first.applied + second.applied,
            duplicates=first.duplicates + second.duplicates,
            failed={**blocked, **second.failed},
            conflicts={**first.conflicts, **second.conflicts},
            lsn=max(first.lsn, second.lsn),
            path="split",
        )

    async def _apply_once(
        self, txs: Sequence[BufferedTransaction], epoch: int | None
    ) -> BatchOutcome:
        report, lsn = await self._call_batch(txs, epoch, fast=True)
        if report["path"] == "needs_steps":
            report, lsn = await self._call_batch(txs, epoch, fast=False)
        failed = {f["tx_id"]: (f["code"], f["error"]) for f in report["failures"]}
        conflicts = {f["tx_id"]: f["conflict"] for f in report["failures"] if "conflict" in f}
        duplicates = [str(d) for d in report["duplicates"]]
        applied = [
            tx.envelope.tx_id
            for tx in txs
            if tx.envelope.tx_id not in failed and tx.envelope.tx_id not in duplicates
        ]
        return BatchOutcome(
            applied=applied,
            duplicates=duplicates,
            failed=failed,
            conflicts=conflicts,
            lsn=lsn,
            path=report["path"],
            durable_lsn=report["durable_lsn"],
        )

    async def _call_batch(
        self, txs: Sequence[BufferedTransaction], epoch: int | None, *, fast: bool
    ) -> tuple[dict[str, Any], int]:
        # Synchronous, and it makes a dict per row: the collector's passes over a heap of
        # thousands of parsed envelopes would cost more than the build (see processor._read).
        collecting = gc.isenabled()
        gc.disable()
        try:
            payload = orjson.dumps(build_payload(txs, fast=fast)).decode()
        finally:
            if collecting:
                gc.enable()
        try:
            conn = await asyncio.wait_for(self._connection(), self._timeout_s)
            result, lsn, durable = await asyncio.wait_for(
                conn.fetchrow(REPLAY_SQL, self._site, epoch, payload, self._standby_names),
                self._timeout_s,
            )
        except asyncpg.PostgresError as exc:
            sqlstate = str(getattr(exc, "sqlstate", "") or "")
            if sqlstate == LEASE_SUPERSEDED:
                raise LeaseSuperseded(str(exc), await self._fence_epoch()) from exc
            if sqlstate == VERSION_NOT_APPLIED:
                raise SchemaHold("version_not_applied", str(exc)) from exc
            if sqlstate == SCHEMA_DRIFT:
                raise SchemaHold("schema_drift", str(exc)) from exc
            if sqlstate.startswith(DATA_EXCEPTION_CLASS):
                raise _UnreadableBatch(sqlstate, str(exc)) from exc
            # Anything else (a missing function on a main not yet migrated, permissions,
            # shutdown) says nothing about the transactions: retry, never dead-letter.
            await self.close()
            raise TransientReplayError(f"main refused the batch: {exc}") from exc
        except (OSError, TimeoutError, asyncpg.InterfaceError) as exc:
            # The batch may or may not have committed; the retry finds out through
            # applied_transactions. The connection's state is unknown, so drop it.
            await self.close()
            raise TransientReplayError(
                f"main unreachable: {type(exc).__name__}: {exc}".rstrip(": ")
            ) from exc

        report = orjson.loads(result)
        report["durable_lsn"] = None if durable is None else int(durable)
        return report, int(lsn)

    async def _call(self, sql: str, *args: object, what: str) -> object:
        rows = await self._call_rows(sql, *args, what=what)
        return rows[0][0] if rows else None

    async def _call_row(self, sql: str, *args: object, what: str) -> asyncpg.Record:
        return (await self._call_rows(sql, *args, what=what))[0]

    async def _call_rows(self, sql: str, *args: object, what: str) -> list[asyncpg.Record]:
        try:
            conn = await asyncio.wait_for(self._connection(), self._timeout_s)
            rows: list[asyncpg.Record] = await asyncio.wait_for(
                conn.fetch(sql, *args), self._timeout_s
            )
            return rows
        except asyncpg.PostgresError as exc:
            if getattr(exc, "sqlstate", None) == LEASE_SUPERSEDED:
                raise LeaseSuperseded(str(exc), await self._fence_epoch()) from exc
            await self.close()
            raise TransientReplayError(f"{what}: {exc}") from exc
        except (OSError, TimeoutError, asyncpg.InterfaceError) as exc:
            await self.close()
            raise TransientReplayError(f"main unreachable: {type(exc).__name__}") from exc

    async def _fence_epoch(self) -> int | None:
        try:
            conn = await self._connection()
            value = await asyncio.wait_for(
                conn.fetchval("SELECT epoch FROM replay_fences WHERE site = $1", self._site),
                self._timeout_s,
            )
        except (asyncpg.PostgresError, OSError, TimeoutError, asyncpg.InterfaceError):
            return None
        return int(value) if value is not None else None

    async def close(self) -> None:
        conn, self._conn = self._conn, None
        if conn is not None and not conn.is_closed():
            conn.terminate()
