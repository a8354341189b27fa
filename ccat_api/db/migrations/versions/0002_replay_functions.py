"""server-side replay: apply a whole batch of transactions in one call

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-22

Over a 200 ms WAN every round trip counts, so one call applies a whole batch: a fast
set-based path (rows grouped per model and operation, parents first) and, if that hits a
permanent error, a careful path that applies each transaction in its own subtransaction,
dead-letters the failing ones and the ones that depend on them, and keeps the rest.
Transient errors (serialization, lock timeouts, recovery, shutdown) are re-raised so the
whole batch is retried later. Every applied tx_id is recorded in applied_transactions in the
same database transaction; ids already there are skipped (exactly once).
"""

from collections.abc import Sequence

from alembic import op

revision: str = "0002"
down_revision: str | None = "0001"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

IS_TRANSIENT = r"""
CREATE OR REPLACE FUNCTION ccat_is_transient(p_state text) RETURNS boolean
LANGUAGE sql IMMUTABLE AS $$
  SELECT p_state IN ('40001', '40P01', '55P03', '57014', '25006')
      OR left(p_state, 2) IN ('08', '53', '57', '58', 'XX')
$$;
"""

APPLY_ROWS = r"""
CREATE OR REPLACE FUNCTION ccat_apply_rows(
  p_model text, p_op text, p_columns text[], p_rows jsonb
) RETURNS void LANGUAGE plpgsql AS $$
DECLARE
  v_cols text;
  v_vals text;
  v_count bigint;
  v_expected bigint := jsonb_array_length(p_rows);
BEGIN
  IF p_op = 'insert' THEN
    SELECT string_agg(format('%I', c), ', ') INTO v_cols FROM unnest(p_columns) AS c;
    EXECUTE format(
      'INSERT INTO %I (%s) SELECT %s FROM jsonb_populate_recordset(NULL::%I, $1)',
      p_model, v_cols, v_cols, p_model) USING p_rows;
    RETURN;
  ELSIF p_op = 'update' THEN
    SELECT string_agg(format('%I', c), ', '), string_agg(format('v.%I', c), ', ')
      INTO v_cols, v_vals FROM unnest(p_columns) AS c WHERE c <> 'id';
    IF v_cols IS NULL THEN
      -- A patch that changes nothing still requires its target to exist.
      EXECUTE format(
        'SELECT count(*) FROM %I AS t JOIN jsonb_populate_recordset(NULL::%I, $1) AS v '
        'ON t.id = v.id', p_model, p_model) INTO v_count USING p_rows;
    ELSE
      EXECUTE format(
        'UPDATE %I AS t SET (%s) = ROW(%s) '
        'FROM jsonb_populate_recordset(NULL::%I, $1) AS v WHERE t.id = v.id',
        p_model, v_cols, v_vals, p_model) USING p_rows;
      GET DIAGNOSTICS v_count = ROW_COUNT;
    END IF;
  ELSIF p_op = 'delete' THEN
    EXECUTE format(
      'DELETE FROM %I AS t USING jsonb_populate_recordset(NULL::%I, $1) AS v WHERE t.id = v.id',
      p_model, p_model) USING p_rows;
    GET DIAGNOSTICS v_count = ROW_COUNT;
  ELSE
    RAISE EXCEPTION 'unknown step operation %', p_op USING ERRCODE = '22023';
  END IF;
  IF v_count <> v_expected THEN
    RAISE EXCEPTION '% of % % targets in % do not exist',
      v_expected - v_count, v_expected, p_op, p_model
      USING ERRCODE = 'P0002';
  END IF;
END $$;
"""

APPLY_BATCH = r"""
CREATE OR REPLACE FUNCTION ccat_apply_batch(p_site text, p_epoch bigint, p_batch jsonb)
RETURNS jsonb LANGUAGE plpgsql AS $$
DECLARE
  v_ids uuid[];
  v_done uuid[];
  v_failed uuid[] := '{}';
  v_failures jsonb := '[]';
  v_tx jsonb;
  v_step jsonb;
  v_group jsonb;
  v_id uuid;
  v_blocker uuid;
  v_state text;
  v_msg text;
  v_detail text;
BEGIN
  IF p_epoch IS NOT NULL THEN
    -- Fencing: the row lock serialises processors of one site, and a processor whose lease
    -- was taken over (lower epoch) is refused before it can apply anything.
    INSERT INTO replay_fences AS f (site, epoch, updated_at) VALUES (p_site, p_epoch, now())
      ON CONFLICT (site) DO UPDATE SET epoch = EXCLUDED.epoch, updated_at = now()
      WHERE f.epoch <= EXCLUDED.epoch;
    IF NOT FOUND THEN
      RAISE EXCEPTION 'replay lease epoch % for site % was superseded', p_epoch, p_site
        USING ERRCODE = 'CCA01';
    END IF;
  END IF;

  SELECT coalesce(array_agg((t->>'tx_id')::uuid), '{}') INTO v_ids
    FROM jsonb_array_elements(p_batch->'txs') AS t;
  SELECT coalesce(array_agg(a.tx_id), '{}') INTO v_done
    FROM applied_transactions AS a WHERE a.tx_id = ANY(v_ids);

  IF cardinality(v_done) = 0 AND jsonb_typeof(p_batch->'groups') = 'array' THEN
    BEGIN
      FOR v_group IN SELECT g FROM jsonb_array_elements(p_batch->'groups') AS g LOOP
        PERFORM ccat_apply_rows(
          v_group->>'model', v_group->>'op',
          ARRAY(SELECT jsonb_array_elements_text(v_group->'columns')), v_group->'rows');
      END LOOP;
      INSERT INTO applied_transactions (tx_id, site, seq)
        SELECT (t->>'tx_id')::uuid, p_site, (t->>'seq')::bigint
        FROM jsonb_array_elements(p_batch->'txs') AS t;
      RETURN jsonb_build_object(
        'path', 'fast', 'duplicates', '[]'::jsonb, 'failures', '[]'::jsonb);
    EXCEPTION WHEN OTHERS THEN
      GET STACKED DIAGNOSTICS v_state = RETURNED_SQLSTATE;
      IF ccat_is_transient(v_state) THEN
        RAISE;
      END IF;
      -- A permanent error somewhere in the batch: find it transaction by transaction below.
    END;
  END IF;

  FOR v_tx IN SELECT t FROM jsonb_array_elements(p_batch->'txs') AS t LOOP
    v_id := (v_tx->>'tx_id')::uuid;
    CONTINUE WHEN v_id = ANY(v_done);
    SELECT d::uuid INTO v_blocker
      FROM jsonb_array_elements_text(coalesce(v_tx->'deps', '[]'::jsonb)) AS d
      WHERE d::uuid = ANY(v_failed) LIMIT 1;
    IF v_blocker IS NOT NULL THEN
      v_failed := v_failed || v_id;
      v_failures := v_failures || jsonb_build_object(
        'tx_id', v_id, 'code', 'dependency_failed',
        'error', format('depends on failed transaction %s', v_blocker));
      CONTINUE;
    END IF;
    BEGIN
      FOR v_step IN SELECT s FROM jsonb_array_elements(v_tx->'steps') AS s LOOP
        PERFORM ccat_apply_rows(
          v_step->>'model', v_step->>'op',
          ARRAY(SELECT jsonb_object_keys(v_step->'row')), jsonb_build_array(v_step->'row'));
      END LOOP;
      INSERT INTO applied_transactions (tx_id, site, seq)
        VALUES (v_id, p_site, (v_tx->>'seq')::bigint);
    EXCEPTION WHEN OTHERS THEN
      GET STACKED DIAGNOSTICS
        v_state = RETURNED_SQLSTATE, v_msg = MESSAGE_TEXT, v_detail = PG_EXCEPTION_DETAIL;
      IF ccat_is_transient(v_state) THEN
        RAISE;
      END IF;
      v_failed := v_failed || v_id;
      v_failures := v_failures || jsonb_build_object(
        'tx_id', v_id, 'code', v_state,
        'error', v_msg || coalesce(' (' || nullif(v_detail, '') || ')', ''));
    END;
  END LOOP;
  RETURN jsonb_build_object(
    'path', 'careful', 'duplicates', to_jsonb(v_done), 'failures', v_failures);
END $$;
"""


def upgrade() -> None:
    op.execute(IS_TRANSIENT)
    op.execute(APPLY_ROWS)
    op.execute(APPLY_BATCH)


def downgrade() -> None:
    op.execute("DROP FUNCTION IF EXISTS ccat_apply_batch(text, bigint, jsonb)")
    op.execute("DROP FUNCTION IF EXISTS ccat_apply_rows(text, text, text[], jsonb)")
    op.execute("DROP FUNCTION IF EXISTS ccat_is_transient(text)")
