-- A site's processor says what it still holds: the version of the code it runs, the oldest
-- envelope version among its pending transactions (NULL: none) and how many are pending. The
-- contract step of a migration reads these before it retires a version.
CREATE OR REPLACE FUNCTION ccat_report_backlog(
  p_site text, p_code_version integer, p_oldest_pending_version integer, p_pending bigint
) RETURNS void LANGUAGE sql AS $$
  INSERT INTO site_backlogs AS b (site, code_version, oldest_pending_version, pending, reported_at)
    VALUES (p_site, p_code_version, p_oldest_pending_version, p_pending, now())
    ON CONFLICT (site) DO UPDATE SET
      code_version = EXCLUDED.code_version,
      oldest_pending_version = EXCLUDED.oldest_pending_version,
      pending = EXCLUDED.pending,
      reported_at = EXCLUDED.reported_at
$$;
