"""server-side replay: apply a whole batch of transactions in one call

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-22

Over a 200 ms WAN every round trip counts, so one call applies a whole batch: a fast
set-based path (rows grouped per model and operation, parents first) and, if that hits a
permanent error, a careful path that applies each transaction in its own subtransaction,
dead-letters the failing ones and the ones that depend on them, and keeps the rest.
Transient errors (serialization, lock timeouts, recovery, shutdown) are re-raised so the
whole batch is retried later. Every applied tx_id is recorded in applied_transactions in the
same database transaction; ids already there are skipped (exactly once).
"""

from collections.abc import Sequence

from alembic import op

from ccat_api.db.migrations.frozen_sql import frozen_sql

revision: str = "0002"
down_revision: str | None = "0001"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.execute(frozen_sql("0002_ccat_is_transient"))
    op.execute(frozen_sql("0002_ccat_apply_rows"))
    op.execute(frozen_sql("0002_ccat_apply_batch"))


def downgrade() -> None:
    op.execute("DROP FUNCTION IF EXISTS ccat_apply_batch(text, bigint, jsonb)")
    op.execute("DROP FUNCTION IF EXISTS ccat_apply_rows(text, text, text[], jsonb)")
    op.execute("DROP FUNCTION IF EXISTS ccat_is_transient(text)")
