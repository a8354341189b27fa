"""retention: replay watermarks, prune bounds, idempotency tombstones

Revision ID: 0009
Revises: 0008
Create Date: 2026-12-06

applied_transactions and idempotency_records stop growing with traffic. Each site's processor
reports its watermark (``replay_watermarks.low_seq``: every seq below it is settled there);
``ccat_prune_retention`` deletes a site's rows older than the horizon and below it, and
records the bound it pruned to, which ccat_apply_batch now treats as already applied, so a
replay of a pruned transaction is still refused. An idempotency answer becomes a tombstone
(response NULL) after its time, and goes after the tombstone's.
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

from ccat_api.db.migrations.frozen_sql import frozen_sql

revision: str = "0009"
down_revision: str | None = "0008"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "replay_watermarks",
        sa.Column("site", sa.Text(), primary_key=True),
        sa.Column("low_seq", sa.BigInteger(), nullable=False),
        sa.Column(
            "reported_at",
            sa.DateTime(timezone=True),
            server_default=sa.text("now()"),
            nullable=False,
        ),
        sa.Column("pruned_below_seq", sa.BigInteger(), server_default="0", nullable=False),
        sa.Column("pruned_before", sa.DateTime(timezone=True), nullable=True),
    )
    op.create_index(
        "ix_applied_transactions_site_applied_at", "applied_transactions", ["site", "applied_at"]
    )
    op.create_index("ix_idempotency_records_created_at", "idempotency_records", ["created_at"])
    op.alter_column("idempotency_records", "response", nullable=True)
    op.execute(frozen_sql("0009_ccat_tx_created_at"))
    op.execute(frozen_sql("0009_ccat_report_watermark"))
    op.execute(frozen_sql("0009_ccat_prune_retention"))
    op.execute(frozen_sql("0009_ccat_apply_batch"))


def downgrade() -> None:
    op.execute(frozen_sql("0008_ccat_apply_batch"))
    op.execute(
        "DROP FUNCTION IF EXISTS ccat_prune_retention(text, interval, interval, interval, integer)"
    )
    op.execute("DROP FUNCTION IF EXISTS ccat_report_watermark(text, bigint, bigint)")
    op.execute("DROP FUNCTION IF EXISTS ccat_tx_created_at(uuid)")
    # A tombstone has no answer to give back under the old rule: the key is forgotten.
    op.execute("DELETE FROM idempotency_records WHERE response IS NULL")
    op.alter_column("idempotency_records", "response", nullable=False)
    op.drop_index("ix_idempotency_records_created_at", table_name="idempotency_records")
    op.drop_index("ix_applied_transactions_site_applied_at", table_name="applied_transactions")
    op.drop_table("replay_watermarks")
