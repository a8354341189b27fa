"""direct writes at the main site in one call: idempotency key, apply, answer

Revision ID: 0004
Revises: 0003
Create Date: 2026-11-22

One statement in its own implicit transaction is one round trip; the explicit
BEGIN / SELECT / COMMIT it replaces was three.
"""

from collections.abc import Sequence

from alembic import op

revision: str = "0004"
down_revision: str | None = "0003"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

APPLY_DIRECT = r"""
CREATE OR REPLACE FUNCTION ccat_apply_direct(
  p_site text, p_batch jsonb,
  p_principal text, p_key text, p_hash text, p_status integer, p_response jsonb
) RETURNS jsonb LANGUAGE plpgsql AS $$
DECLARE
  v_prior idempotency_records%ROWTYPE;
  v_report jsonb;
BEGIN
  IF p_key IS NOT NULL THEN
    -- Taking the key first makes a concurrent duplicate wait here, then see our answer.
    INSERT INTO idempotency_records (principal, key, request_hash, status_code, response)
      VALUES (p_principal, p_key, p_hash, p_status, p_response)
      ON CONFLICT DO NOTHING;
    IF NOT FOUND THEN
      SELECT * INTO v_prior FROM idempotency_records
        WHERE principal = p_principal AND key = p_key;
      RETURN jsonb_build_object('prior', jsonb_build_object(
        'hash', v_prior.request_hash, 'status', v_prior.status_code, 'body', v_prior.response));
    END IF;
  END IF;
  v_report := ccat_apply_batch(p_site, NULL, p_batch);
  IF jsonb_array_length(v_report->'failures') > 0 AND p_key IS NOT NULL THEN
    -- Nothing was written; the key stays free for a corrected request.
    DELETE FROM idempotency_records WHERE principal = p_principal AND key = p_key;
  END IF;
  RETURN v_report;
END $$;
"""


def upgrade() -> None:
    op.execute(APPLY_DIRECT)


def downgrade() -> None:
    op.execute(
        "DROP FUNCTION IF EXISTS ccat_apply_direct(text, jsonb, text, text, text, integer, jsonb)"
    )
