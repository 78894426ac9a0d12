-- token_rotation_internal.start_run(table, column, key, batch_size, plan): opens a new run of a table from the plan
-- that plan_run() read with the caller's rights: records its key (columns and types from the catalog), key
-- range, slices and row count, the role that started it, and, for a partitioned table, the leaf partitions
-- it starts with (verify() names those detached or dropped during the run; one attached later is not chased:
-- its keys beyond key_max are like inserted rows). An empty table (key_max NULL) gives a run that is finished
-- at once. Called by claim_slice() only, as the tool's owner, after authorize(): it reads no table of the
-- caller's and locks nothing itself.
CREATE OR REPLACE FUNCTION token_rotation_internal.start_run(
      p_table       regclass
    , p_column      name
    , p_key         name[]
    , p_batch_size  integer
    , p_plan        jsonb
)
RETURNS token_rotation.runs
LANGUAGE plpgsql VOLATILE
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    v_run      token_rotation.runs;
    v_key_type regtype[];
    v_max      text[];
    v_slices   jsonb := coalesce(p_plan->'slices', '[]');
BEGIN
    SELECT array_agg(a.atttypid::regtype ORDER BY k.ord) INTO v_key_type
      FROM unnest(p_key) WITH ORDINALITY AS k(name, ord)
      JOIN pg_attribute a ON a.attrelid = p_table AND a.attname = k.name AND a.attnum > 0 AND NOT a.attisdropped;
    IF cardinality(v_key_type) IS DISTINCT FROM cardinality(p_key) THEN
        RAISE EXCEPTION 'key (%) is not a set of columns of %', array_to_string(p_key, ', '), p_table
            USING ERRCODE = 'undefined_column', HINT = 'rotate() plans a run: CALL token_rotation.rotate()';
    END IF;
    IF jsonb_typeof(p_plan->'key_max') = 'array' THEN
        v_max := ARRAY(SELECT jsonb_array_elements_text(p_plan->'key_max'));
    END IF;

    INSERT INTO token_rotation.runs (target, token_column, key_columns, key_types, batch_size, key_min, key_max,
                                     partitions, started_by, slices, rows_expected, rows_expected_exact)
    VALUES (p_table, p_column, p_key, v_key_type, p_batch_size,
            CASE WHEN jsonb_typeof(p_plan->'key_min') = 'array'
                 THEN ARRAY(SELECT jsonb_array_elements_text(p_plan->'key_min')) END,
            v_max,
            (SELECT array_agg(pt.relid ORDER BY pt.relid::regclass::text) FROM pg_partition_tree(p_table) AS pt
              WHERE pt.isleaf AND pt.relid <> p_table),
            token_rotation_internal.caller(),
            greatest(jsonb_array_length(v_slices), 1),
            coalesce((SELECT sum((s->>'rows_expected')::bigint) FROM jsonb_array_elements(v_slices) AS s), 0),
            coalesce((SELECT bool_and((s->>'exact')::boolean) FROM jsonb_array_elements(v_slices) AS s), true))
    RETURNING * INTO v_run;

    IF v_max IS NULL OR jsonb_array_length(v_slices) = 0 THEN
        RETURN token_rotation_internal.finish_run(v_run.run_id, clock_timestamp());
    END IF;

    INSERT INTO token_rotation.slices (run_id, slice_no, lo, hi, rows_expected)
    SELECT v_run.run_id, s.ord::integer,
           CASE WHEN jsonb_typeof(s.slice->'lo') = 'array' THEN ARRAY(SELECT jsonb_array_elements_text(s.slice->'lo')) END,
           CASE WHEN jsonb_typeof(s.slice->'hi') = 'array' THEN ARRAY(SELECT jsonb_array_elements_text(s.slice->'hi')) END,
           (s.slice->>'rows_expected')::bigint
      FROM jsonb_array_elements(v_slices) WITH ORDINALITY AS s(slice, ord);
    RETURN v_run;
END
$$;

COMMENT ON FUNCTION token_rotation_internal.start_run(regclass, name, name[], integer, jsonb) IS
    'Opens a new run from plan_run()''s plan: key, key range, slices, row count, who started it. Called by '
    'claim_slice().';
