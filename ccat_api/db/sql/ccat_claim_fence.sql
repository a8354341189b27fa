-- A new replay lease holder claims the site's fence before it reads anything, so a deposed
-- processor resuming after a pause cannot commit a batch it read later than the successor's
-- first one. An epoch lower than the fence's is refused with CCA01.
CREATE OR REPLACE FUNCTION ccat_claim_fence(p_site text, p_epoch bigint)
RETURNS bigint LANGUAGE plpgsql AS $$
BEGIN
  INSERT INTO replay_fences AS f (site, epoch, updated_at) VALUES (p_site, p_epoch, now())
    ON CONFLICT (site) DO UPDATE SET epoch = EXCLUDED.epoch, updated_at = now()
    WHERE f.epoch <= EXCLUDED.epoch;
  IF NOT FOUND THEN
    RAISE EXCEPTION 'replay lease epoch % for site % was superseded', p_epoch, p_site
      USING ERRCODE = 'CCA01';
  END IF;
  RETURN p_epoch;
END $$;
