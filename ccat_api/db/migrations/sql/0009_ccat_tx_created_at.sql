-- When a transaction was built, read from its id: a UUIDv7 starts with its creation time in
-- milliseconds (the site's clock). Any other id reads as -infinity: as old as can be, so the
-- retention rule in ccat_apply_batch treats it as settled once its seq is below the bound.
CREATE OR REPLACE FUNCTION ccat_tx_created_at(p_tx_id uuid)
RETURNS timestamptz LANGUAGE sql IMMUTABLE PARALLEL SAFE AS $$
  SELECT CASE WHEN substr(p_tx_id::text, 15, 1) = '7'
    THEN to_timestamp(
      ('x' || substr(replace(p_tx_id::text, '-', ''), 1, 12))::bit(48)::bigint / 1000.0)
    ELSE '-infinity'::timestamptz END
$$;
