-- Retention on main, one call per run (ccat-api prune, or the main gateway's periodic task).
--
-- applied_transactions: a replayed site's row goes when it is older than p_horizon (applied
-- and built before now() - p_horizon) and its seq is below the site's reported watermark.
-- The site's prune bound (pruned_below_seq, pruned_before) then covers every row ever
-- deleted, and ccat_apply_batch treats a transaction inside the bound as already applied: a
-- replay of a pruned transaction is refused as a duplicate, however late it comes. A
-- transaction built after the bound (a Redis restored from an old backup gives seqs again)
-- is outside it, and applies. Direct writes (p_direct_site) are never sent again, their rows
-- go by age alone, and their bound (seq 0) is kept the same way.
--
-- idempotency_records: an answer is kept in full for p_answer_ttl, then only as a tombstone
-- (the key and the request's digest, response NULL) until p_tombstone_ttl: a retry gets a
-- 409 naming the key instead of a second write. Deleted after that.
--
-- At most p_max_rows rows of each kind per call ('more' says whether to call again), so one
-- call stays short however long pruning was off. Concurrent calls: one prunes, the rest skip.
CREATE OR REPLACE FUNCTION ccat_prune_retention(
  p_direct_site text, p_horizon interval, p_answer_ttl interval, p_tombstone_ttl interval,
  p_max_rows integer
) RETURNS jsonb LANGUAGE plpgsql AS $$
DECLARE
  v_cutoff timestamptz := now() - p_horizon;
  v_site record;
  v_deleted bigint;
  v_applied bigint := 0;
  v_compacted bigint;
  v_expired bigint;
  v_more boolean := false;
BEGIN
  IF NOT pg_try_advisory_xact_lock(hashtext('ccat_prune_retention')) THEN
    RETURN jsonb_build_object('skipped', true);
  END IF;
  IF p_direct_site IS NOT NULL THEN
    -- Every direct write is settled when its call returns: its site's watermark is seq 1.
    INSERT INTO replay_watermarks (site, low_seq, reported_at)
      VALUES (p_direct_site, 1, now())
      ON CONFLICT (site) DO UPDATE SET low_seq = 1, reported_at = now();
  END IF;
  FOR v_site IN SELECT site, low_seq FROM replay_watermarks ORDER BY site FOR UPDATE LOOP
    -- The bound first: from this commit on, a replay of any row deleted below is refused.
    UPDATE replay_watermarks SET
        pruned_below_seq = greatest(pruned_below_seq, v_site.low_seq),
        pruned_before = greatest(coalesce(pruned_before, '-infinity'), v_cutoff)
      WHERE site = v_site.site;
    DELETE FROM applied_transactions WHERE tx_id IN (
      SELECT tx_id FROM applied_transactions
        WHERE site = v_site.site AND applied_at < v_cutoff AND seq < v_site.low_seq
          AND ccat_tx_created_at(tx_id) < v_cutoff
        LIMIT p_max_rows);
    GET DIAGNOSTICS v_deleted = ROW_COUNT;
    v_applied := v_applied + v_deleted;
    v_more := v_more OR v_deleted = p_max_rows;
  END LOOP;

  UPDATE idempotency_records SET response = NULL WHERE (principal, key) IN (
    SELECT principal, key FROM idempotency_records
      WHERE created_at < now() - p_answer_ttl AND response IS NOT NULL LIMIT p_max_rows);
  GET DIAGNOSTICS v_compacted = ROW_COUNT;
  DELETE FROM idempotency_records WHERE (principal, key) IN (
    SELECT principal, key FROM idempotency_records
      WHERE created_at < now() - p_tombstone_ttl LIMIT p_max_rows);
  GET DIAGNOSTICS v_expired = ROW_COUNT;

  RETURN jsonb_build_object(
    'applied_transactions', v_applied,
    'idempotency_answers_compacted', v_compacted,
    'idempotency_tombstones_deleted', v_expired,
    'more', v_more OR v_compacted = p_max_rows OR v_expired = p_max_rows);
END $$;
