-- One call applies a whole replay batch on main: over a 200 ms WAN every round trip counts.
-- It checks the site's fence epoch, skips tx_ids already in applied_transactions (exactly
-- once), and tries the set-based fast path over the batch's groups. On a permanent error,
-- or with duplicates, a batch without steps gets needs_steps back, nothing written; sent
-- again with steps, the careful path applies each transaction in its own subtransaction,
-- reports failures and their dependents, and keeps the rest. Transient errors are re-raised
-- so the whole batch is retried.
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

  -- Batches may leave out per-transaction steps (the fast path does not need them);
  -- the careful path does: ask for them, having written nothing.
  IF jsonb_typeof(p_batch->'txs'->0->'steps') IS DISTINCT FROM 'array' THEN
    RETURN jsonb_build_object(
      'path', 'needs_steps', 'duplicates', '[]'::jsonb, 'failures', '[]'::jsonb);
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
