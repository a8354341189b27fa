-- A replay batch in one WAN round trip: ccat_apply_batch, the commit, and the positions the
-- site needs after it, all inside one CALL. A procedure may COMMIT when it is called outside
-- a transaction block (the processor never opens one), so the flush LSN read after the
-- COMMIT covers the batch's commit record (synchronous_commit=on makes it durable first),
-- where a function would have to leave that read to a second statement and a second trip.
-- durable_lsn: the lowest flush position among main's named standbys (p_standbys), below
-- which a failover of main keeps every commit; with none named main's own flush position,
-- and NULL when none of them is connected. Errors are ccat_apply_batch's, raised before the
-- COMMIT: nothing of the batch is written then.
CREATE OR REPLACE PROCEDURE ccat_replay_batch(
  p_site text, p_epoch bigint, p_batch jsonb, p_standbys text[],
  INOUT report jsonb DEFAULT NULL, INOUT lsn bigint DEFAULT NULL,
  INOUT durable_lsn bigint DEFAULT NULL
) LANGUAGE plpgsql AS $$
BEGIN
  report := ccat_apply_batch(p_site, p_epoch, p_batch);
  COMMIT;
  lsn := (pg_current_wal_flush_lsn() - '0/0'::pg_lsn)::bigint;
  IF cardinality(p_standbys) = 0 THEN
    durable_lsn := lsn;
  ELSE
    SELECT (min(r.flush_lsn) - '0/0'::pg_lsn)::bigint INTO durable_lsn
      FROM pg_stat_replication AS r WHERE r.application_name = ANY(p_standbys);
  END IF;
END $$;
