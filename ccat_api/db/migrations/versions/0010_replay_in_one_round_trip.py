"""replay a batch in one round trip: apply, commit and read the LSN inside one CALL

Revision ID: 0010
Revises: 0009
Create Date: 2026-12-06

``ccat_replay_batch`` is a procedure around ``ccat_apply_batch`` (unchanged) that commits
and then reads main's flush position and its standbys' durable horizon, so the processor's
batch costs one WAN round trip instead of two (the apply call, then the LSN read).
"""

from collections.abc import Sequence

from alembic import op

from ccat_api.db.migrations.frozen_sql import frozen_sql

revision: str = "0010"
down_revision: str | None = "0009"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.execute(frozen_sql("0010_ccat_replay_batch"))


def downgrade() -> None:
    op.execute("DROP PROCEDURE IF EXISTS ccat_replay_batch")
