-- Rotation as a policy, run by pg_cron: token_rotation.schedule(table, cron, options) makes one job per table
-- that CALLs rotate() with those options (each firing resumes an interrupted run or starts a new one over
-- what is due: p_older_than with the run's p_rotated_at_column, p_max_duration for a nightly window);
-- unschedule(table) removes it; schedules() lists the jobs with their last firing, the run it made, and the
-- age of the table's oldest token. pg_cron runs a job as the role that scheduled it (cron.job.username), so
-- a schedule has its maker's rights, never more: schedule() is not SECURITY DEFINER, it checks that the maker
-- may rotate the table, and rotate() checks again at every firing. pg_cron's objects are reached by dynamic
-- SQL only, so that the tool installs and lints where pg_cron is absent (require_cron() says what to do).
--   SELECT token_rotation.schedule('public.api_keys', '0 1 * * *',
--          '{"older_than": "90 days", "rotated_at_column": "rotated_at", "max_duration": "4 hours"}');
--   SELECT * FROM token_rotation.schedules();
--   SELECT token_rotation.unschedule('public.api_keys');

-- token_rotation.schedule(table, cron, options): creates (or replaces) the pg_cron job of a table, named
-- token_rotation:<table>, owned by the caller; returns its jobid.
CREATE OR REPLACE FUNCTION token_rotation.schedule(
      p_table   regclass
    , p_cron    text
    , p_options jsonb DEFAULT '{}'
)
RETURNS bigint
LANGUAGE plpgsql VOLATILE
SET search_path = pg_catalog, pg_temp
AS $$
    -- @plpgsql_check_options: security_warnings = false
    -- (cron.schedule() is called by EXECUTE so that the tool installs where pg_cron is absent; the values are
    -- bound with USING)
DECLARE
    v_command text;
    v_jobid   bigint;
BEGIN
    PERFORM token_rotation_internal.require_cron();
    PERFORM token_rotation_internal.authorize(p_table, coalesce(p_options->>'column', 'token')::name, 'schedule');
    v_command := token_rotation_internal.schedule_command(p_table, p_options);
    EXECUTE format('SELECT %I.schedule($1, $2, $3)', 'cron') INTO v_jobid
      USING 'token_rotation:' || p_table::text, p_cron, v_command;
    RETURN v_jobid;
END
$$;

COMMENT ON FUNCTION token_rotation.schedule(regclass, text, jsonb) IS
    'Creates or replaces the pg_cron job that CALLs rotate() on a table with these options; runs as its maker.';
