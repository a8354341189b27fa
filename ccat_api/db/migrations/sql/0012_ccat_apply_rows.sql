-- Applies one group of rows (one model, one operation) set-based from a jsonb array; both
-- paths of ccat_apply_batch go through it. An update or delete whose target does not exist
-- raises P0002, a permanent error, so a write against a lost record is dead-lettered rather
-- than silently dropped. Rows of an update may name ``row_version``: the version of the row the
-- site's update was based on. It is a condition, never a value set: a row changed since
-- (another version) is not updated, and counts as a missing target here; ccat_apply_batch's
-- careful path tells such a conflict apart before it gets this far.
CREATE OR REPLACE FUNCTION ccat_apply_rows(
  p_model text, p_op text, p_columns text[], p_rows jsonb
) RETURNS void LANGUAGE plpgsql AS $$
DECLARE
  v_cols text;
  v_vals text;
  v_count bigint;
  v_expected bigint := jsonb_array_length(p_rows);
  v_where text := '';
BEGIN
  IF p_op = 'insert' THEN
    SELECT string_agg(format('%I', c), ', ') INTO v_cols FROM unnest(p_columns) AS c;
    EXECUTE format(
      'INSERT INTO %I (%s) SELECT %s FROM jsonb_populate_recordset(NULL::%I, $1)',
      p_model, v_cols, v_cols, p_model) USING p_rows;
    RETURN;
  ELSIF p_op = 'update' THEN
    SELECT string_agg(format('%I', c), ', '), string_agg(format('v.%I', c), ', ')
      INTO v_cols, v_vals FROM unnest(p_columns) AS c WHERE c NOT IN ('id', 'row_version');
    IF 'row_version' = ANY(p_columns) THEN
      v_where := ' AND t.row_version = v.row_version';
    END IF;
    IF v_cols IS NULL THEN
      -- A patch that changes nothing still requires its target to exist.
      EXECUTE format(
        'SELECT count(*) FROM %I AS t JOIN jsonb_populate_recordset(NULL::%I, $1) AS v '
        'ON t.id = v.id' || v_where, p_model, p_model) INTO v_count USING p_rows;
    ELSE
      EXECUTE format(
        'UPDATE %I AS t SET (%s) = ROW(%s) '
        'FROM jsonb_populate_recordset(NULL::%I, $1) AS v WHERE t.id = v.id' || v_where,
        p_model, v_cols, v_vals, p_model) USING p_rows;
      GET DIAGNOSTICS v_count = ROW_COUNT;
    END IF;
  ELSIF p_op = 'delete' THEN
    EXECUTE format(
      'DELETE FROM %I AS t USING jsonb_populate_recordset(NULL::%I, $1) AS v WHERE t.id = v.id',
      p_model, p_model) USING p_rows;
    GET DIAGNOSTICS v_count = ROW_COUNT;
  ELSE
    RAISE EXCEPTION 'unknown step operation %', p_op USING ERRCODE = '22023';
  END IF;
  IF v_count <> v_expected THEN
    RAISE EXCEPTION '% of % % targets in % do not exist',
      v_expected - v_count, v_expected, p_op, p_model
      USING ERRCODE = 'P0002';
  END IF;
END $$;
