-- token_rotation.verify(run_id): checks, from the progress log, that a run covered its whole key range once:
-- its slices chain from the smallest key to key_max, each slice's batches chain from its lo to its hi with
-- no gap and no overlap, and the row counts agree; that the token column holds no duplicate; and, for a
-- partitioned table, that every leaf partition it started with is still one of its partitions (a partition
-- detached during the run keeps the old tokens of the rows the run had not reached: the check fails and names
-- it; one dropped took its rows with it and is only named). Keys are compared as text[], one element per key
-- column. One row per check; every ok must be true:
--   SELECT * FROM token_rotation.verify(42);
CREATE OR REPLACE FUNCTION token_rotation.verify(p_run_id bigint)
RETURNS TABLE (check_name text, ok boolean, detail text)
LANGUAGE plpgsql STABLE
SET search_path = pg_catalog, pg_temp
AS $$
    -- @plpgsql_check_options: security_warnings = false
    -- (its one EXECUTE quotes the column with %I and the table is a regclass, which prints quoted)
DECLARE
    v_run   token_rotation.runs;
    v_bad   bigint;
    v_n     bigint;
    v_dup   bigint;
    v_index text;
    v_gone  text;
    v_dropped text;
BEGIN
    SELECT * INTO v_run FROM token_rotation.runs WHERE run_id = p_run_id;
    IF NOT FOUND THEN
        RAISE EXCEPTION 'run % does not exist', p_run_id
            USING ERRCODE = 'no_data_found', HINT = 'SELECT run_id, table_name, state FROM token_rotation.progress';
    END IF;

    IF EXISTS (SELECT FROM token_rotation.shards s WHERE s.run_id = p_run_id) THEN  -- a Citus distributed table
        RETURN QUERY SELECT * FROM token_rotation_internal.citus_verify(p_run_id);
        RETURN;
    END IF;

    check_name := 'finished';
    ok := v_run.state = 'finished';
    detail := format('state %s', v_run.state);
    RETURN NEXT;

    -- slices: first lo NULL, each lo = the previous hi, last hi = key_max
    SELECT count(*) FILTER (WHERE lo IS DISTINCT FROM prev_hi OR (is_last AND hi IS DISTINCT FROM v_run.key_max)),
           count(*)
      INTO v_bad, v_n
      FROM (SELECT lo, hi, lag(hi) OVER w AS prev_hi, row_number() OVER w = count(*) OVER () AS is_last
              FROM token_rotation.slices WHERE run_id = p_run_id WINDOW w AS (ORDER BY slice_no)) s;
    check_name := 'slices cover the key range';
    ok := v_bad = 0 AND (v_n > 0 OR v_run.key_max IS NULL);
    detail := format('%s slice(s), %s out of line', v_n, v_bad);
    RETURN NEXT;

    -- batches: within each slice, each after_key = the previous last_key (the slice's lo for the first),
    -- and the last batch ends at the slice's hi
    SELECT count(*) FILTER (WHERE b.after_key IS DISTINCT FROM coalesce(b.prev_last, s.lo)
                               OR (b.is_last AND b.last_key IS DISTINCT FROM s.hi)),
           count(*)
      INTO v_bad, v_n
      FROM token_rotation.slices s
      JOIN (SELECT slice_id, after_key, last_key,
                   lag(last_key) OVER w AS prev_last,
                   row_number() OVER w = count(*) OVER (PARTITION BY slice_id) AS is_last
              FROM token_rotation.batches WHERE run_id = p_run_id
            WINDOW w AS (PARTITION BY slice_id ORDER BY batch_no)) b USING (slice_id)
     WHERE s.run_id = p_run_id;
    SELECT v_bad + count(*) INTO v_bad FROM token_rotation.slices s
     WHERE s.run_id = p_run_id AND NOT EXISTS (SELECT FROM token_rotation.batches b WHERE b.slice_id = s.slice_id);
    check_name := 'batches chain without gap or overlap';
    ok := v_bad = 0;
    detail := format('%s batch(es), %s out of line', v_n, v_bad);
    RETURN NEXT;

    SELECT count(*) INTO v_bad FROM token_rotation.slices s
     WHERE s.run_id = p_run_id
       AND s.rows_done <> (SELECT coalesce(sum(b.rows), 0) FROM token_rotation.batches b WHERE b.slice_id = s.slice_id);
    check_name := 'row counts agree with the log';
    ok := v_bad = 0;
    detail := format('%s rows logged, %s slice(s) disagree',
                     (SELECT coalesce(sum(rows), 0) FROM token_rotation.batches WHERE run_id = p_run_id), v_bad);
    RETURN NEXT;

    check_name := 'tokens are unique';
    SELECT format('enforced by unique index %s', i.indexrelid::regclass) INTO v_index
      FROM pg_index i JOIN pg_attribute a ON a.attrelid = i.indrelid AND a.attnum = i.indkey[0]
     WHERE i.indrelid = v_run.target AND i.indisunique AND i.indisvalid AND i.indnkeyatts = 1
       AND i.indpred IS NULL AND i.indexprs IS NULL AND a.attname = v_run.token_column
     LIMIT 1;
    IF NOT EXISTS (SELECT FROM pg_class WHERE oid = v_run.target) THEN
        ok := false;
        detail := 'the table no longer exists';
    ELSIF v_index IS NOT NULL THEN  -- no need to read a billion tokens
        ok := true;
        detail := v_index;
    ELSE
        EXECUTE format('SELECT count(%1$I) - count(DISTINCT %1$I) FROM %3$s%2$s', v_run.token_column, v_run.target,
                       CASE WHEN (SELECT c.relkind FROM pg_class c WHERE c.oid = v_run.target) <> 'p' THEN 'ONLY ' END)
           INTO v_dup;
        ok := v_dup = 0;
        detail := format('%s duplicate(s)', v_dup);
    END IF;
    RETURN NEXT;

    IF v_run.partitions IS NOT NULL THEN
        SELECT string_agg(p::regclass::text, ', ' ORDER BY p::regclass::text)
                   FILTER (WHERE EXISTS (SELECT FROM pg_class c WHERE c.oid = p)),
               string_agg(p::text, ', ' ORDER BY p) FILTER (WHERE NOT EXISTS (SELECT FROM pg_class c WHERE c.oid = p))
          INTO v_gone, v_dropped
          FROM unnest(v_run.partitions) AS p
         WHERE NOT EXISTS (SELECT FROM pg_partition_tree(v_run.target) AS pt WHERE pt.relid = p);
        check_name := 'partitions stayed attached';
        ok := v_gone IS NULL;
        detail := concat_ws('; ', format('%s leaf partition(s) at the start', cardinality(v_run.partitions)),
                            'detached during the run, rows not reached keep their old tokens: ' || v_gone,
                            'dropped during the run (oid): ' || v_dropped);
        RETURN NEXT;
    END IF;
END
$$;

COMMENT ON FUNCTION token_rotation.verify(bigint) IS
    'Checks from the progress log that a run covered its key range once (no gap, no overlap) and tokens are unique.';
