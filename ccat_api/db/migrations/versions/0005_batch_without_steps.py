"""replay batches may leave out per-transaction steps; the careful path asks for them

Revision ID: 0005
Revises: 0004
Create Date: 2026-11-22

The fast path only needs the grouped rows; sending every step as well doubled the payload
main has to parse and the WAN has to carry. When the fast path cannot be used (a permanent
error, or transactions already applied), ccat_apply_batch now answers ``needs_steps``
having written nothing, and the processor sends the batch again with its steps.
"""

from collections.abc import Sequence

from alembic import op

from ccat_api.db.migrations.frozen_sql import frozen_sql

revision: str = "0005"
down_revision: str | None = "0004"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.execute(frozen_sql("0005_ccat_apply_batch"))


def downgrade() -> None:
    # Revision 0002's function; callers must then send steps with every batch again.
    op.execute(frozen_sql("0002_ccat_apply_batch"))
