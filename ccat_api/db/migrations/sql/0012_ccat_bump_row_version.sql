-- Every UPDATE of a versioned row (db/models/base.py Versioned) counts one more version,
-- whoever makes it: a replayed site write, a direct write at main, an operator's SQL. A
-- buffered update names the version it was based on; ccat_apply_batch compares.
CREATE OR REPLACE FUNCTION ccat_bump_row_version() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
  NEW.row_version := OLD.row_version + 1;
  RETURN NEW;
END $$;
