"""direct writes at the main site in one call: idempotency key, apply, answer

Revision ID: 0004
Revises: 0003
Create Date: 2026-11-22

One statement in its own implicit transaction is one round trip; the explicit
BEGIN / SELECT / COMMIT it replaces was three.
"""

from collections.abc import Sequence

from alembic import op

from ccat_api.db.migrations.frozen_sql import frozen_sql

revision: str = "0004"
down_revision: str | None = "0003"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.execute(frozen_sql("0004_ccat_apply_direct"))


def downgrade() -> None:
    op.execute(
        "DROP FUNCTION IF EXISTS ccat_apply_direct(text, jsonb, text, text, text, integer, jsonb)"
    )
