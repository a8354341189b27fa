"""claim the replay fence before reading: a successor fences off its predecessor at once

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-22

ccat_apply_batch checks the fence on every batch, but only moves it when a batch arrives. A
new lease holder calls ccat_claim_fence first, so a deposed processor that resumes after a
pause cannot commit a batch it read later than the successor's first one.
"""

from collections.abc import Sequence

from alembic import op

from ccat_api.db.migrations.frozen_sql import frozen_sql

revision: str = "0003"
down_revision: str | None = "0002"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.execute(frozen_sql("0003_ccat_claim_fence"))


def downgrade() -> None:
    op.execute("DROP FUNCTION IF EXISTS ccat_claim_fence(text, bigint)")
