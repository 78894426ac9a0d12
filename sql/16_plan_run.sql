-- token_rotation_internal.plan_run(table, key, workers, filter): what a new run of a table starts with, read from the table
-- with the caller's rights (rotate() calls it before claim_slice(), which writes the run as the tool's owner
-- and reads no table of the caller's): the key range (smallest and largest key now, as text[]) and the
-- slices of plan_slices(), as jsonb: {"key_min": [...], "key_max": [...], "slices": [{"lo", "hi",
-- "rows_expected", "exact"}, ...]}. key_max NULL: the table is empty (or no row matches p_filter, the run's
-- run_filter(): then the range is that of the matching rows).
--   SELECT token_rotation_internal.plan_run('public.tickets', '{id}', 2);
CREATE OR REPLACE FUNCTION token_rotation_internal.plan_run(
      p_table   regclass
    , p_key     name[]
    , p_workers integer
    , p_filter  text DEFAULT NULL
)
RETURNS jsonb
LANGUAGE plpgsql VOLATILE
SET search_path = pg_catalog, pg_temp
AS $$
    -- @plpgsql_check_options: security_warnings = false
    -- (its EXECUTE runs a statement from key_range_sql(), identifiers quoted with %I: plpgsql_check cannot
    -- follow a statement built in another function)
DECLARE
    v_min    text[];
    v_max    text[];
    v_slices jsonb;
BEGIN
    -- ORDER BY ... LIMIT 1 rather than min()/max(): it works for every btree type (there is no min(uuid))
    EXECUTE (SELECT k.first_last FROM token_rotation_internal.key_range_sql(p_table, p_key, p_filter => p_filter) AS k) INTO v_min, v_max;
    IF v_max IS NOT NULL THEN
        SELECT jsonb_agg(jsonb_build_object('lo', p.lo, 'hi', p.hi, 'rows_expected', p.rows_expected,
                                            'exact', p.exact) ORDER BY p.slice_no)
          INTO v_slices
          FROM token_rotation_internal.plan_slices(p_table, p_key, p_workers, v_max, p_filter => p_filter) AS p;
    END IF;
    RETURN jsonb_build_object('key_min', v_min, 'key_max', v_max, 'slices', coalesce(v_slices, '[]'));
END
$$;

COMMENT ON FUNCTION token_rotation_internal.plan_run(regclass, name[], integer, text) IS
    'The key range and slices a new run of a table starts with, read with the caller''s rights (rotate()).';
