-- token_rotation.unschedule(table): removes the table's job; false when it had none (of the caller's).
CREATE OR REPLACE FUNCTION token_rotation.unschedule(p_table regclass)
RETURNS boolean
LANGUAGE plpgsql VOLATILE
SET search_path = pg_catalog, pg_temp
AS $$
    -- @plpgsql_check_options: security_warnings = false
    -- (cron's objects by EXECUTE, as in schedule())
DECLARE
    v_jobid bigint;
BEGIN
    PERFORM token_rotation_internal.require_cron();
    EXECUTE format('SELECT jobid FROM %I.job WHERE jobname = $1', 'cron') INTO v_jobid
      USING 'token_rotation:' || p_table::text;
    IF v_jobid IS NULL THEN
        RETURN false;
    END IF;
    EXECUTE format('SELECT %I.unschedule($1)', 'cron') USING v_jobid;
    RETURN true;
END
$$;

COMMENT ON FUNCTION token_rotation.unschedule(regclass) IS 'Removes the pg_cron job of a table''s schedule.';
