-- SQLSTATEs that say nothing about the transaction being applied (serialization, deadlock,
-- lock timeout, cancel, read-only main, connection, resources, shutdown, internal errors).
-- ccat_apply_batch re-raises these so the whole batch is retried later, never dead-lettered.
CREATE OR REPLACE FUNCTION ccat_is_transient(p_state text) RETURNS boolean
LANGUAGE sql IMMUTABLE AS $$
  SELECT p_state IN ('40001', '40P01', '55P03', '57014', '25006')
      OR left(p_state, 2) IN ('08', '53', '57', '58', 'XX')
$$;
