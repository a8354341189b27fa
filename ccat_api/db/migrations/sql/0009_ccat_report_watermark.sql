-- A site's processor says how far its site is settled: every transaction it may still send
-- has seq >= p_low_seq; below it everything was applied here, or failed (a retry takes a new
-- seq) or was discarded there. Fenced like a batch, so a deposed processor cannot report
-- what its successor's Redis no longer says. ccat_prune_retention reads it.
CREATE OR REPLACE FUNCTION ccat_report_watermark(p_site text, p_epoch bigint, p_low_seq bigint)
RETURNS void LANGUAGE plpgsql AS $$
BEGIN
  IF p_epoch IS NOT NULL AND p_epoch < coalesce(
      (SELECT epoch FROM replay_fences WHERE site = p_site), p_epoch) THEN
    RAISE EXCEPTION 'replay lease epoch % for site % was superseded', p_epoch, p_site
      USING ERRCODE = 'CCA01';
  END IF;
  INSERT INTO replay_watermarks AS w (site, low_seq, reported_at)
    VALUES (p_site, p_low_seq, now())
    ON CONFLICT (site) DO UPDATE SET low_seq = EXCLUDED.low_seq, reported_at = now();
END $$;
