"""test only: expand raw_data_files: a nullable column, a NOT NULL column with a default, and
checksum renamed to t_digest while checksum keeps working

Revision ID: t100
Revises: the real head

Envelopes of version 1 name ``checksum``; a trigger copies it into ``t_digest`` (and back, for
writers and readers of the new shape), so they apply as they are. Registers envelope version 2,
the shape that names ``t_digest``.
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

from ccat_api.db.contract import register_envelope_version, unregister_envelope_version
from ccat_api.db.migrate import current_head

revision: str = "t100"
down_revision: str | None = current_head()
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.add_column("raw_data_files", sa.Column("t_comment", sa.Text(), nullable=True))
    op.add_column(
        "raw_data_files",
        sa.Column("t_quality", sa.Text(), nullable=False, server_default="unchecked"),
    )
    op.add_column("raw_data_files", sa.Column("t_digest", sa.Text(), nullable=True))
    op.execute("UPDATE raw_data_files SET t_digest = checksum")
    op.execute(
        """
        CREATE FUNCTION t_digest_sync() RETURNS trigger LANGUAGE plpgsql AS $$
        BEGIN
          NEW.t_digest := coalesce(NEW.t_digest, NEW.checksum);
          NEW.checksum := coalesce(NEW.checksum, NEW.t_digest);
          RETURN NEW;
        END $$
        """
    )
    op.execute(
        "CREATE TRIGGER t_digest_sync BEFORE INSERT OR UPDATE ON raw_data_files"
        " FOR EACH ROW EXECUTE FUNCTION t_digest_sync()"
    )
    register_envelope_version(2, "raw_data_files.checksum is t_digest (test only)")


def downgrade() -> None:
    unregister_envelope_version(2)
    op.execute("DROP TRIGGER t_digest_sync ON raw_data_files")
    op.execute("DROP FUNCTION t_digest_sync()")
    op.drop_column("raw_data_files", "t_digest")
    op.drop_column("raw_data_files", "t_quality")
    op.drop_column("raw_data_files", "t_comment")
