-- token_rotation_internal.plan_slices(table, key, workers): cuts the key range (.., p_key_max] of a table into at most
-- p_workers disjoint slices (lo, hi] of about equal row counts, from quantiles of the keys themselves, so that
-- large holes in the key space do not unbalance the workers. Keys are text[], one element per key column; a
-- partitioned table's slices are key ranges over its parent, which may span or follow its partitions.
-- Tables of up to p_exact_limit rows (estimated) are counted exactly and split at the keys of rank i/N (a walk
-- of the key's index, no sort); larger ones are sampled (TABLESAMPLE SYSTEM, about 200,000 rows) and their row
-- counts estimated. p_filter (run_filter()) limits every count, split and sample to the rows that match it;
-- the estimate that decides between counting and sampling is then the planner's for those rows. Used by rotate() when a run starts; a DBA can call it to preview a plan:
--   SELECT * FROM token_rotation_internal.plan_slices('public.tickets', '{id}', 4, (SELECT ARRAY[max(id)::text] FROM tickets));
CREATE OR REPLACE FUNCTION token_rotation_internal.plan_slices(
      p_table        regclass
    , p_key          name[]
    , p_workers      integer
    , p_key_max      text[]
    , p_exact_limit  bigint DEFAULT 20000000
    , p_filter       text   DEFAULT NULL
)
RETURNS TABLE (slice_no integer, lo text[], hi text[], rows_expected bigint, exact boolean)
LANGUAGE plpgsql VOLATILE
SET search_path = pg_catalog, pg_temp
AS $$
    -- @plpgsql_check_options: security_warnings = false
    -- (its EXECUTEs run statements from key_range_sql(), identifiers quoted with %I, values bound with
    -- USING: plpgsql_check cannot follow a statement built in another function)
DECLARE
    v_sql       record;
    v_estimate  double precision;
    v_exact     boolean;
    v_fractions double precision[];
    v_bounds    text[];  -- the slices' bounds, each a key (text[]) in its text form
    v_split     text[];
    v_total     bigint;
    v_counts    bigint[] := '{}'::bigint[];
    v_pos       bigint;
    v_prev_pos  bigint := 0;
    v_plan      json;
BEGIN
    IF p_workers IS NULL OR p_workers < 1 THEN
        RAISE EXCEPTION 'workers must be at least 1, not %', p_workers
            USING ERRCODE = 'invalid_parameter_value', HINT = 'use one worker per core at most';
    END IF;
    -- the table itself, or a partitioned table's leaf partitions
    SELECT sum(CASE WHEN c.reltuples >= 0 THEN c.reltuples
                    ELSE pg_relation_size(c.oid) / 100.0 END)  -- never analyzed: assume ~100 bytes a row
      INTO v_estimate
      FROM pg_class c
     WHERE (c.oid = p_table AND c.relkind <> 'p')
        OR c.oid IN (SELECT pt.relid FROM pg_partition_tree(p_table) AS pt WHERE pt.isleaf);
    IF p_filter IS NOT NULL THEN
        -- the rows that match the run's filter (run_filter()), as the planner estimates them: a subset of a
        -- big table is counted exactly when it is small, however big the table
        EXECUTE format('EXPLAIN (FORMAT JSON) SELECT FROM %s AS t WHERE %s',
                       (SELECT CASE WHEN c.relkind = 'p' THEN '' ELSE 'ONLY ' END FROM pg_class c WHERE c.oid = p_table)
                       || p_table::text, p_filter)
           INTO v_plan;
        v_estimate := least(v_estimate, (v_plan->0->'Plan'->>'Plan Rows')::double precision);
    END IF;
    SELECT * INTO v_sql FROM token_rotation_internal.key_range_sql(p_table, p_key, p_filter => p_filter);

    v_exact := coalesce(v_estimate, 0) <= p_exact_limit;
    v_bounds := ARRAY[NULL::text];

    IF v_exact THEN
        -- exact: count the rows, then walk the primary-key index to the key at each i/N position, each walk
        -- starting at the previous split (keyset + OFFSET), so the whole index is read about once and nothing
        -- is sorted; the slices' row counts follow from the positions
        EXECUTE v_sql.count_upto INTO v_total USING NULL::text[], p_key_max;
        FOR i IN 1 .. p_workers - 1 LOOP
            v_pos := v_total * i / p_workers;
            CONTINUE WHEN v_pos <= v_prev_pos OR v_pos >= v_total;
            IF cardinality(v_bounds) = 1 THEN
                EXECUTE v_sql.end_first INTO v_split USING NULL::text[], p_key_max, v_pos - v_prev_pos - 1;
            ELSE
                EXECUTE v_sql.end_after INTO v_split
                  USING v_bounds[cardinality(v_bounds)]::text[], p_key_max, v_pos - v_prev_pos - 1;
            END IF;
            v_bounds := v_bounds || v_split::text;
            v_counts := v_counts || (v_pos - v_prev_pos);
            v_prev_pos := v_pos;
        END LOOP;
        v_bounds := v_bounds || p_key_max::text;
        v_counts := v_counts || (v_total - v_prev_pos);
    ELSE
        -- sampled: split keys are the i/N quantiles of a block sample, deduplicated, each below the largest key
        IF p_workers > 1 AND p_key_max IS NOT NULL THEN
            SELECT array_agg(g::double precision / p_workers ORDER BY g)
              INTO v_fractions FROM generate_series(1, p_workers - 1) AS g;
            FOR v_split IN EXECUTE v_sql.quantiles
                USING NULL::text[], p_key_max, v_fractions, least(100.0, 100.0 * 200000 / v_estimate) LOOP
                CONTINUE WHEN v_split IS NULL OR v_split::text IS NOT DISTINCT FROM v_bounds[cardinality(v_bounds)]
                           OR v_split = p_key_max;
                v_bounds := v_bounds || v_split::text;
            END LOOP;
        END IF;
        v_bounds := v_bounds || p_key_max::text;
        v_total := v_estimate::bigint;
    END IF;

    FOR i IN 1 .. cardinality(v_bounds) - 1 LOOP
        slice_no := i;
        lo := v_bounds[i]::text[];
        hi := v_bounds[i + 1]::text[];
        exact := v_exact;
        rows_expected := CASE WHEN v_exact THEN v_counts[i] ELSE v_total / (cardinality(v_bounds) - 1) END;
        RETURN NEXT;
    END LOOP;
END
$$;

COMMENT ON FUNCTION token_rotation_internal.plan_slices(regclass, name[], integer, text[], bigint, text) IS
    'Cuts a table''s key range into at most N balanced slices (lo, hi] from key quantiles; rows counted or estimated.';
