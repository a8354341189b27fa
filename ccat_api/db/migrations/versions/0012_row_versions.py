"""row versions: a buffered update that main has overtaken is a conflict, not an overwrite

Revision ID: 0012
Revises: 0011
Create Date: 2026-12-06

The tables that buffered updates change get ``row_version`` (1 for every existing row), which
a trigger raises by one on every UPDATE. A site's update names the version it was based on;
ccat_apply_rows updates only a row still at that version, and ccat_apply_batch reports one
that moved on as a conflict with both versions. Updates without a version apply as before.
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

from ccat_api.db.migrations.frozen_sql import frozen_sql

revision: str = "0012"
down_revision: str | None = "0011"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

VERSIONED = (
    "executed_obs_units",
    "raw_data_packages",
    "raw_data_files",
    "physical_copies",
    "data_transfers",
)


def upgrade() -> None:
    op.execute(frozen_sql("0012_ccat_bump_row_version"))
    for table in VERSIONED:
        op.add_column(
            table, sa.Column("row_version", sa.BigInteger(), server_default="1", nullable=False)
        )
        op.execute(
            f"CREATE TRIGGER {table}_row_version BEFORE UPDATE ON {table}"
            " FOR EACH ROW EXECUTE FUNCTION ccat_bump_row_version()"
        )
    op.execute(frozen_sql("0012_ccat_apply_rows"))
    op.execute(frozen_sql("0012_ccat_apply_batch"))


def downgrade() -> None:
    op.execute(frozen_sql("0011_ccat_apply_batch"))
    op.execute(frozen_sql("0002_ccat_apply_rows"))
    for table in VERSIONED:
        op.execute(f"DROP TRIGGER {table}_row_version ON {table}")
        op.drop_column(table, "row_version")
    op.execute("DROP FUNCTION ccat_bump_row_version()")
