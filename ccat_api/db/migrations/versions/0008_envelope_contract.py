"""the envelope contract: which envelope versions main applies, and each site's backlog

Revision ID: 0008
Revises: 0007
Create Date: 2026-12-06

Every buffered envelope carries the schema version of the code that built it. Main now says
which versions it applies (``envelope_versions``): a migration that would break older
envelopes keeps them working (expand) and retires their version only in a later step
(contract), which ``db.contract`` refuses while a site still reports envelopes of it
(``site_backlogs``, written by each site's processor). ccat_apply_batch refuses a batch of a
version main does not apply (CCA02) and reports schema drift (CCA03) instead of a dead letter,
and takes the fence through ccat_claim_fence rather than a copy of it.
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

from ccat_api.db.migrations.frozen_sql import frozen_sql

revision: str = "0008"
down_revision: str | None = "0007"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "envelope_versions",
        sa.Column("version", sa.Integer(), primary_key=True, autoincrement=False),
        sa.Column("note", sa.Text(), nullable=False),
        sa.Column(
            "registered_at",
            sa.DateTime(timezone=True),
            server_default=sa.text("now()"),
            nullable=False,
        ),
        sa.Column("retired_at", sa.DateTime(timezone=True), nullable=True),
    )
    op.execute(
        "INSERT INTO envelope_versions (version, note) "
        "VALUES (1, 'the envelope shape of revisions 0001 to 0008')"
    )
    op.create_table(
        "site_backlogs",
        sa.Column("site", sa.Text(), primary_key=True),
        sa.Column("code_version", sa.Integer(), nullable=False),
        sa.Column("oldest_pending_version", sa.Integer(), nullable=True),
        sa.Column("pending", sa.BigInteger(), nullable=False),
        sa.Column(
            "reported_at",
            sa.DateTime(timezone=True),
            server_default=sa.text("now()"),
            nullable=False,
        ),
    )
    op.execute(frozen_sql("0008_ccat_report_backlog"))
    op.execute(frozen_sql("0008_ccat_apply_batch"))


def downgrade() -> None:
    op.execute(frozen_sql("0005_ccat_apply_batch"))
    op.execute("DROP FUNCTION IF EXISTS ccat_report_backlog(text, integer, integer, bigint)")
    op.drop_table("site_backlogs")
    op.drop_table("envelope_versions")
