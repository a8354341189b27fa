-- A direct write at the main site in one statement, one round trip where BEGIN, SELECT and
-- COMMIT took three: take the idempotency key, apply with ccat_apply_batch (no fence), and
-- free the key again if anything failed. A repeated key gets the first request's hash,
-- status and body back instead.
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
