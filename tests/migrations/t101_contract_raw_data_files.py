"""test only: contract raw_data_files: version 1 envelopes retired, checksum and its sync
trigger dropped: the rename is complete

Revision ID: t101
Revises: t100

Refused whole while any site reports pending envelopes older than version 2.
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

from ccat_api.db.contract import restore_envelope_versions_below, retire_envelope_versions_below

revision: str = "t101"
down_revision: str | None = "t100"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    retire_envelope_versions_below(2)
    op.execute("DROP TRIGGER t_digest_sync ON raw_data_files")
    op.drop_column("raw_data_files", "checksum")
    op.alter_column("raw_data_files", "t_digest", nullable=False)


def downgrade() -> None:
    op.alter_column("raw_data_files", "t_digest", nullable=True)
    op.add_column("raw_data_files", sa.Column("checksum", sa.Text(), nullable=True))
    op.execute("UPDATE raw_data_files SET checksum = t_digest")
    op.alter_column("raw_data_files", "checksum", nullable=False)
    op.execute(
        "CREATE TRIGGER t_digest_sync BEFORE INSERT OR UPDATE ON raw_data_files"
        " FOR EACH ROW EXECUTE FUNCTION t_digest_sync()"
    )
    restore_envelope_versions_below(2)
