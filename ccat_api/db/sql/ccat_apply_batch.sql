-- One call applies a whole replay batch on main: over a 200 ms WAN every round trip counts.
-- It claims the site's fence epoch, checks that main still applies every envelope version in
-- the batch, skips tx_ids already in applied_transactions (exactly once), and tries the
-- set-based fast path over the batch's groups. On a permanent error, or with duplicates, a
-- batch without steps gets needs_steps back, nothing written; sent again with steps, the
-- careful path applies each transaction in its own subtransaction, reports failures and
-- their dependents, and keeps the rest. Transient errors are re-raised so the whole batch is
-- retried. A transaction older than what retention pruned is a duplicate too, row or not.
-- Schema errors are not the transaction's fault either: an envelope version main
-- does not apply (CCA02) or a table or column the envelope and main disagree on (CCA03)
-- fails the whole batch, nothing written, and the site holds its replay until they agree.
-- A transaction sent with its Idempotency-Key (``idem``: principal, key, hash, status, body)
-- records the key and its first answer in idempotency_records as it applies, so the key
-- outlives the site's Redis copy; one whose key main already holds was a late retry that the
-- site no longer recognised, and fails (idempotency_key_used) rather than apply twice.
-- An update that names the row_version it was based on, where main's row has moved on since,
-- fails as a conflict (code "conflict", with both versions of the row: "conflict" holds
-- main's row and the site's change) for an operator to apply anyway or discard.
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
  v_column text;
  v_versions int[];
  v_current jsonb;
  v_unsupported int[];
BEGIN
  IF p_epoch IS NOT NULL THEN
    PERFORM ccat_claim_fence(p_site, p_epoch);
  END IF;

  -- A batch from a processor that predates versions is of the first version. FOR SHARE: a
  -- contract step retiring a version waits for batches of it in flight, and batches after
  -- it see the version retired.
  SELECT coalesce(array_agg(DISTINCT v::int), '{1}') INTO v_versions
    FROM jsonb_array_elements_text(coalesce(p_batch->'versions', '[1]'::jsonb)) AS v;
  PERFORM 1 FROM envelope_versions AS e
    WHERE e.version = ANY(v_versions) AND e.retired_at IS NULL FOR SHARE;
  SELECT array_agg(v ORDER BY v) INTO v_unsupported FROM unnest(v_versions) AS v
    WHERE NOT EXISTS (SELECT 1 FROM envelope_versions AS e
                       WHERE e.version = v AND e.retired_at IS NULL);
  IF v_unsupported IS NOT NULL THEN
    RAISE EXCEPTION 'main does not apply envelope version %; it applies versions %',
      array_to_string(v_unsupported, ', '),
      coalesce((SELECT string_agg(version::text, ', ' ORDER BY version) FROM envelope_versions
                 WHERE retired_at IS NULL), 'none')
      USING ERRCODE = 'CCA02';
  END IF;

  SELECT coalesce(array_agg((t->>'tx_id')::uuid), '{}') INTO v_ids
    FROM jsonb_array_elements(p_batch->'txs') AS t;
  SELECT coalesce(array_agg(a.tx_id), '{}') INTO v_done
    FROM applied_transactions AS a WHERE a.tx_id = ANY(v_ids);
  -- Retention (ccat_prune_retention): a transaction inside the site's prune bound (seq below
  -- it, built before it) was settled long ago and its row may be gone; it is a duplicate.
  SELECT v_done || coalesce(array_agg((t->>'tx_id')::uuid), '{}') INTO v_done
    FROM jsonb_array_elements(p_batch->'txs') AS t
    JOIN replay_watermarks AS w ON w.site = p_site
    WHERE (t->>'seq')::bigint < w.pruned_below_seq
      AND ccat_tx_created_at((t->>'tx_id')::uuid) < w.pruned_before
      AND NOT (t->>'tx_id')::uuid = ANY(v_done);

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
      INSERT INTO idempotency_records (principal, key, request_hash, status_code, response)
        SELECT i->>'principal', i->>'key', i->>'hash', (i->>'status')::int, i->'body'
        FROM jsonb_array_elements(p_batch->'txs') AS t, LATERAL (SELECT t->'idem') AS x(i)
        WHERE i IS NOT NULL;
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
    IF v_tx ? 'idem' AND EXISTS (
         SELECT 1 FROM idempotency_records AS r
          WHERE r.principal = v_tx->'idem'->>'principal' AND r.key = v_tx->'idem'->>'key') THEN
      v_failed := v_failed || v_id;
      v_failures := v_failures || jsonb_build_object(
        'tx_id', v_id, 'code', 'idempotency_key_used',
        'error', format('Idempotency-Key %s was already used for a write main applied; this'
                        ' retry is not applied again', v_tx->'idem'->>'key'));
      CONTINUE;
    END IF;
    BEGIN
      FOR v_step IN SELECT s FROM jsonb_array_elements(v_tx->'steps') AS s LOOP
        IF v_step->>'op' = 'update' AND (v_step->'row') ? 'row_version' THEN
          -- FOR UPDATE: the version compared is the version updated.
          EXECUTE format('SELECT to_jsonb(t) FROM %I AS t WHERE t.id::text = $1 FOR UPDATE',
                         v_step->>'model')
            INTO v_current USING v_step->'row'->>'id';
          IF (v_current->>'row_version')::bigint <> (v_step->'row'->>'row_version')::bigint THEN
            RAISE EXCEPTION '% % changed on main since this update was made (version %, the'
                ' update was based on version %)', v_step->>'model', v_step->'row'->>'id',
                v_current->>'row_version', v_step->'row'->>'row_version'
              USING ERRCODE = 'CCA04', DETAIL = jsonb_build_object(
                'model', v_step->>'model', 'id', v_step->'row'->>'id',
                'base_version', (v_step->'row'->>'row_version')::bigint,
                'main_version', (v_current->>'row_version')::bigint,
                'main', v_current, 'change', (v_step->'row') - 'row_version')::text;
          END IF;
        END IF;
        PERFORM ccat_apply_rows(
          v_step->>'model', v_step->>'op',
          ARRAY(SELECT jsonb_object_keys(v_step->'row')), jsonb_build_array(v_step->'row'));
      END LOOP;
      INSERT INTO applied_transactions (tx_id, site, seq)
        VALUES (v_id, p_site, (v_tx->>'seq')::bigint);
      IF v_tx ? 'idem' THEN
        INSERT INTO idempotency_records (principal, key, request_hash, status_code, response)
          VALUES (v_tx->'idem'->>'principal', v_tx->'idem'->>'key', v_tx->'idem'->>'hash',
                  (v_tx->'idem'->>'status')::int, v_tx->'idem'->'body');
      END IF;
    EXCEPTION WHEN OTHERS THEN
      GET STACKED DIAGNOSTICS
        v_state = RETURNED_SQLSTATE, v_msg = MESSAGE_TEXT, v_detail = PG_EXCEPTION_DETAIL,
        v_column = COLUMN_NAME;
      IF ccat_is_transient(v_state) THEN
        RAISE;
      END IF;
      -- Main's schema and the envelope disagree (a table or column one of them does not
      -- have, a type changed, a NOT NULL column the envelope never heard of): held, since
      -- a migration or an upgrade resolves it, where a dead letter would need a person.
      IF v_state IN ('42703', '42P01', '42804')
         OR (v_state = '23502' AND NOT coalesce((v_step->'row') ? v_column, false)) THEN
        RAISE EXCEPTION 'schema drift applying transaction %: %', v_id, v_msg
          USING ERRCODE = 'CCA03', DETAIL = coalesce(v_detail, '');
      END IF;
      v_failed := v_failed || v_id;
      IF v_state = 'CCA04' THEN
        v_failures := v_failures || jsonb_build_object(
          'tx_id', v_id, 'code', 'conflict', 'error', v_msg, 'conflict', v_detail::jsonb);
        CONTINUE;
      END IF;
      v_failures := v_failures || jsonb_build_object(
        'tx_id', v_id, 'code', v_state,
        'error', v_msg || coalesce(' (' || nullif(v_detail, '') || ')', ''));
    END;
  END LOOP;
  RETURN jsonb_build_object(
    'path', 'careful', 'duplicates', to_jsonb(v_done), 'failures', v_failures);
END $$;
