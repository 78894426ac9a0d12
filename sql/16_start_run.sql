-- token_rotation.start_run(table, column, key, batch_size, workers): opens a new run of a table: fixes its
-- key (p_key, or the primary key when NULL) and key range (smallest and largest key now), plans its slices
-- and counts (or estimates) the rows to rotate. For a partitioned table it also records the leaf partitions
-- it starts with: verify() names those detached or dropped during the run; one attached later is not chased
-- (its keys beyond key_max are like inserted rows). An empty table gives a run that is finished at once.
-- Called by rotate(), inside its first transaction, after describe_target() has accepted the table; it does
-- not lock anything itself.
CREATE OR REPLACE FUNCTION token_rotation.start_run(
      p_table       regclass
    , p_column      name
    , p_key         name[]
    , p_batch_size  integer
    , p_workers     integer
)
RETURNS token_rotation.runs
LANGUAGE plpgsql VOLATILE
SET search_path = pg_catalog, pg_temp
AS $$
    -- @plpgsql_check_options: security_warnings = false
    -- (its EXECUTEs run statements from key_range_sql(), identifiers quoted with %I, values bound with
    -- USING: plpgsql_check cannot follow a statement built in another function)
DECLARE
    v_key      name[];
    v_key_type regtype[];
    v_min      text[];
    v_max      text[];
    v_run      token_rotation.runs;
    v_plan     record;
    v_workers  integer := 0;
    v_rows     bigint := 0;
    v_exact    boolean := true;
BEGIN
    SELECT d.key_columns, d.key_types INTO v_key, v_key_type
      FROM token_rotation.describe_target(p_table, p_column, p_key) AS d;
    -- ORDER BY ... LIMIT 1 rather than min()/max(): it works for every btree type (there is no min(uuid))
    EXECUTE (SELECT k.first_last FROM token_rotation.key_range_sql(p_table, v_key) AS k) INTO v_min, v_max;

    INSERT INTO token_rotation.runs (target, token_column, key_columns, key_types, batch_size, key_min, key_max,
                                     partitions)
    VALUES (p_table, p_column, v_key, v_key_type, p_batch_size, v_min, v_max,
            (SELECT array_agg(pt.relid ORDER BY pt.relid::regclass::text) FROM pg_partition_tree(p_table) AS pt
              WHERE pt.isleaf AND pt.relid <> p_table))
    RETURNING * INTO v_run;

    IF v_max IS NULL THEN
        UPDATE token_rotation.runs
           SET state = 'finished', finished_at = clock_timestamp(), state_changed_at = clock_timestamp()
         WHERE run_id = v_run.run_id
        RETURNING * INTO v_run;
        RETURN v_run;
    END IF;

    FOR v_plan IN SELECT * FROM token_rotation.plan_slices(p_table, v_key, p_workers, v_max) LOOP
        INSERT INTO token_rotation.slices (run_id, slice_no, lo, hi, rows_expected)
        VALUES (v_run.run_id, v_plan.slice_no, v_plan.lo, v_plan.hi, v_plan.rows_expected);
        v_workers := v_workers + 1;
        v_rows := v_rows + v_plan.rows_expected;
        v_exact := v_plan.exact;
    END LOOP;

    UPDATE token_rotation.runs
       SET workers = v_workers, rows_expected = v_rows, rows_expected_exact = v_exact
     WHERE run_id = v_run.run_id
    RETURNING * INTO v_run;
    RETURN v_run;
END
$$;

COMMENT ON FUNCTION token_rotation.start_run(regclass, name, name[], integer, integer) IS
    'Opens a new run: fixes the key and its range, records the leaf partitions, plans the slices, counts the '
    'rows. Called by rotate().';
