-- token_rotation.schedules(): the schedules the caller can see (pg_cron shows a role its own jobs; a
-- superuser all): the job, its table and cron expression, its command, its last firing (start, end,
-- status, pg_cron's message), the newest run of the table started since that firing began, and where the
-- job names a rotated_at_column: the age in seconds of the oldest token that column dates (the number a
-- dashboard wants against the policy's age), and whether any row has none (NULL: never rotated, due).
-- Empty, without error, where pg_cron is absent.
CREATE OR REPLACE FUNCTION token_rotation.schedules()
RETURNS TABLE (
      jobid                bigint
    , table_name           regclass
    , schedule             text
    , command              text
    , active               boolean
    , last_start           timestamptz
    , last_end             timestamptz
    , last_status          text
    , last_message         text
    , run_id               bigint
    , run_state            text
    , oldest_token_seconds double precision
    , never_rotated        boolean
)
LANGUAGE plpgsql STABLE
SET search_path = pg_catalog, pg_temp
AS $$
    -- @plpgsql_check_options: security_warnings = false
    -- (cron's objects by EXECUTE, as in schedule())
DECLARE
    v_job    record;
    v_column text;  -- the job's p_rotated_at_column
BEGIN
    -- the row's shape for plpgsql_check, which cannot see into the dynamic query (a no-op at run time)
    PERFORM 'PRAGMA:TYPE:v_job (jobid bigint, target regclass, schedule text, command text, active boolean, '
            'start_time timestamptz, end_time timestamptz, status text, return_message text)';
    IF NOT EXISTS (SELECT FROM pg_extension WHERE extname = 'pg_cron') THEN
        RETURN;
    END IF;
    FOR v_job IN EXECUTE format(
        'SELECT j.jobid, to_regclass(substr(j.jobname, 16)) AS target, j.schedule, j.command, j.active,'
        ' d.start_time, d.end_time, d.status, d.return_message'
        ' FROM %1$I.job j LEFT JOIN LATERAL (SELECT * FROM %1$I.job_run_details r WHERE r.jobid = j.jobid'
        ' ORDER BY r.runid DESC LIMIT 1) d ON true'
        ' WHERE j.jobname LIKE $1 ORDER BY j.jobid', 'cron') USING 'token\_rotation:%'
    LOOP
        jobid := v_job.jobid;
        table_name := v_job.target;
        schedule := v_job.schedule;
        command := v_job.command;
        active := v_job.active;
        last_start := v_job.start_time;
        last_end := v_job.end_time;
        last_status := v_job.status;
        last_message := token_rotation_internal.redact(v_job.return_message);
        SELECT r.run_id, r.state::text INTO run_id, run_state
          FROM token_rotation.runs r
         WHERE r.target = v_job.target AND r.started_at >= v_job.start_time - interval '1 minute'
         ORDER BY r.run_id DESC LIMIT 1;
        v_column := substring(v_job.command FROM 'p_rotated_at_column => ''([^'']+)''');
        SELECT o.seconds, o.never_rotated INTO oldest_token_seconds, never_rotated
          FROM token_rotation_internal.oldest_token(v_job.target, v_column::name) AS o;
        RETURN NEXT;
    END LOOP;
END
$$;

COMMENT ON FUNCTION token_rotation.schedules() IS
    'The rotation schedules (pg_cron jobs) the caller can see: last firing, the run it made, oldest token age.';
