-- token_rotation_internal.schedule_command(table, options): the CALL a job runs: rotate() with each key of p_options
-- as the parameter p_<key>, its value a literal that the parameter's type reads (e.g. {"batch_size": 3000,
-- "older_than": "90 days", "where": "tenant_id = 42"}). Keys that are not rotate()'s parameters, and the ones
-- a job cannot use (table, quiet, after_run, stop_at: a job's window is max_duration), are refused (22023).
CREATE OR REPLACE FUNCTION token_rotation_internal.schedule_command(
      p_table   regclass
    , p_options jsonb
)
RETURNS text
LANGUAGE plpgsql STABLE
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    v_allowed text[];
    v_wrong   text;
BEGIN
    IF p_options IS NOT NULL AND jsonb_typeof(p_options) <> 'object' THEN
        RAISE EXCEPTION 'the options of a schedule must be a JSON object, not %', jsonb_typeof(p_options)
            USING ERRCODE = 'invalid_parameter_value', HINT = 'e.g. {"older_than": "90 days"}';
    END IF;
    SELECT array_agg(substr(a.name, 3)) INTO v_allowed
      FROM pg_proc p CROSS JOIN LATERAL unnest(p.proargnames) AS a(name)
     WHERE p.pronamespace = 'token_rotation'::regnamespace AND p.proname = 'rotate' AND p.prokind = 'p'
       AND a.name NOT IN ('p_table', 'p_quiet', 'p_after_run', 'p_stop_at');
    SELECT string_agg(k, ', ' ORDER BY k) INTO v_wrong
      FROM jsonb_object_keys(coalesce(p_options, '{}')) AS k
     WHERE k <> ALL (v_allowed);
    IF v_wrong IS NOT NULL THEN
        RAISE EXCEPTION 'a schedule cannot pass %', v_wrong
            USING ERRCODE = 'invalid_parameter_value',
                  DETAIL = format('a job CALLs rotate() with the options %s', array_to_string(v_allowed, ', ')),
                  HINT = 'name them without p_, e.g. {"older_than": "90 days", "max_duration": "4 hours"}';
    END IF;
    RETURN format('CALL token_rotation.rotate(%L::regclass, p_quiet => true%s)', p_table::text,
                  coalesce((SELECT string_agg(format(', %I => %L', 'p_' || o.key, o.value #>> '{}'), '' ORDER BY o.key)
                              FROM jsonb_each(coalesce(p_options, '{}')) AS o
                             WHERE jsonb_typeof(o.value) <> 'null'), ''));
END
$$;

COMMENT ON FUNCTION token_rotation_internal.schedule_command(regclass, jsonb) IS
    'The CALL of rotate() a schedule''s job runs, from its options (rotate()''s parameters without p_).';
