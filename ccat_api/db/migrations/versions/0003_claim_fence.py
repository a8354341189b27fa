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

revision: str = "0003"
down_revision: str | None = "0002"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

CLAIM_FENCE = r"""
CREATE OR REPLACE FUNCTION ccat_claim_fence(p_site text, p_epoch bigint)
RETURNS bigint LANGUAGE plpgsql AS $$
BEGIN
  INSERT INTO replay_fences AS f (site, epoch, updated_at) VALUES (p_site, p_epoch, now())
    ON CONFLICT (site) DO UPDATE SET epoch = EXCLUDED.epoch, updated_at = now()
    WHERE f.epoch <= EXCLUDED.epoch;
  IF NOT FOUND THEN
    RAISE EXCEPTION 'replay lease epoch % for site % was superseded', p_epoch, p_site
      USING ERRCODE = 'CCA01';
  END IF;
  RETURN p_epoch;
END $$;
"""


def upgrade() -> None:
    op.execute(CLAIM_FENCE)


def downgrade() -> None:
    op.execute("DROP FUNCTION IF EXISTS ccat_claim_fence(text, bigint)")
