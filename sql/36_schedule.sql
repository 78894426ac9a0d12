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

-- token_rotation.require_cron(): raises a clear error unless pg_cron is preloaded and installed in this
-- database (55000 object_not_in_prerequisite_state), naming the package, the setting and the statement.
CREATE OR REPLACE FUNCTION token_rotation.require_cron()
RETURNS void
LANGUAGE plpgsql STABLE
SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
    IF EXISTS (SELECT FROM pg_extension WHERE extname = 'pg_cron') THEN
        RETURN;
    END IF;
    IF 'pg_cron' <> ALL (string_to_array(replace(current_setting('shared_preload_libraries'), ' ', ''), ',')) THEN
        RAISE EXCEPTION 'schedules need pg_cron, which this server does not load'
            USING ERRCODE = 'object_not_in_prerequisite_state',
                  DETAIL = format('shared_preload_libraries is %L', current_setting('shared_preload_libraries')),
                  HINT = format('install the package postgresql-%s-cron (Debian, Ubuntu; pg_cron elsewhere), set '
                                'shared_preload_libraries = ''pg_cron'' and cron.database_name = %L in '
                                'postgresql.conf, restart the server, then CREATE EXTENSION pg_cron in %s',
                                current_setting('server_version_num')::integer / 10000, current_database(),
                                quote_ident(current_database()));
    END IF;
    RAISE EXCEPTION 'schedules need the extension pg_cron in database %', current_database()
        USING ERRCODE = 'object_not_in_prerequisite_state',
              DETAIL = 'the server loads pg_cron, but this database has no cron schema',
              HINT = format('CREATE EXTENSION pg_cron in the database cron.database_name names (it must be %s: '
                            'the tool is installed here)', quote_ident(current_database()));
END
$$;

COMMENT ON FUNCTION token_rotation.require_cron() IS
    'Raises 55000 with what to install and set unless pg_cron is preloaded and installed in this database.';

-- token_rotation.schedule_command(table, options): the CALL a job runs: rotate() with each key of p_options
-- as the parameter p_<key>, its value a literal that the parameter's type reads (e.g. {"batch_size": 3000,
-- "older_than": "90 days", "where": "tenant_id = 42"}). Keys that are not rotate()'s parameters, and the ones
-- a job cannot use (table, quiet, after_run, stop_at: a job's window is max_duration), are refused (22023).
CREATE OR REPLACE FUNCTION token_rotation.schedule_command(
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

COMMENT ON FUNCTION token_rotation.schedule_command(regclass, jsonb) IS
    'The CALL of rotate() a schedule''s job runs, from its options (rotate()''s parameters without p_).';

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
    PERFORM token_rotation.require_cron();
    PERFORM token_rotation.authorize(p_table, coalesce(p_options->>'column', 'token')::name, 'schedule');
    v_command := token_rotation.schedule_command(p_table, p_options);
    EXECUTE format('SELECT %I.schedule($1, $2, $3)', 'cron') INTO v_jobid
      USING 'token_rotation:' || p_table::text, p_cron, v_command;
    RETURN v_jobid;
END
$$;

COMMENT ON FUNCTION token_rotation.schedule(regclass, text, jsonb) IS
    'Creates or replaces the pg_cron job that CALLs rotate() on a table with these options; runs as its maker.';

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
    PERFORM token_rotation.require_cron();
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

-- token_rotation.oldest_token(table, column): the age in seconds of the oldest rotation time in a table's
-- rotated-at column, and whether any row has none (NULL: never rotated, so due first), for schedules(); both
-- NULL when the caller may not read the table or the read could run code of a role the caller does not trust.
-- The table and the column come from a pg_cron job, which any role allowed to schedule names, and schedules()
-- is read by `status`, often as a superuser: a view's functions, an IMMUTABLE function of an index expression
-- or predicate, a CHECK constraint, a partition key expression or an extended statistics expression (the
-- planner evaluates those with constant arguments), a policy, or a type's implicit cast would run with the
-- reader's rights. So the column must be a stored timestamptz (what rotate() writes), the table plain or
-- partitioned (every partition plain), no policy applying to the caller, and every relation of it owned by a
-- role the caller trusts (itself, a superuser, a member of it: describe_target()'s rule) or free of such code.
--   SELECT * FROM token_rotation.oldest_token('public.api_keys', 'rotated_at');
CREATE OR REPLACE FUNCTION token_rotation.oldest_token(
      p_table         regclass
    , p_column        name
    , seconds         OUT double precision
    , never_rotated   OUT boolean
)
LANGUAGE plpgsql STABLE
SET search_path = pg_catalog, pg_temp
AS $$
    -- @plpgsql_check_options: security_warnings = false
    -- (the table is a regclass, which quotes its own name; the column is quoted with %I)
BEGIN
    IF p_table IS NULL OR p_column IS NULL OR NOT has_table_privilege(p_table, 'SELECT')
       OR row_security_active(p_table)
       OR NOT EXISTS (SELECT FROM pg_attribute a
                       WHERE a.attrelid = p_table AND a.attname = p_column AND a.attnum > 0 AND NOT a.attisdropped
                         AND a.atttypid = 'timestamptz'::regtype AND a.attgenerated = '')
       OR EXISTS (SELECT
                    FROM (SELECT p_table::oid AS relid UNION SELECT pt.relid FROM pg_partition_tree(p_table) pt) r
                    JOIN pg_class c ON c.oid = r.relid
                   WHERE c.relkind NOT IN ('r', 'p')
                      OR (NOT pg_has_role(c.relowner, current_user, 'USAGE')
                          AND (EXISTS (SELECT FROM pg_index i WHERE i.indrelid = c.oid
                                          AND (i.indexprs IS NOT NULL OR i.indpred IS NOT NULL))
                               OR EXISTS (SELECT FROM pg_constraint n WHERE n.conrelid = c.oid AND n.contype = 'c')
                               OR EXISTS (SELECT FROM pg_partitioned_table t WHERE t.partrelid = c.oid
                                             AND t.partexprs IS NOT NULL)
                               OR EXISTS (SELECT FROM pg_statistic_ext x WHERE x.stxrelid = c.oid
                                             AND x.stxexprs IS NOT NULL)))) THEN
        RETURN;
    END IF;
    -- min() and one NULL are each an index probe where the column is indexed, as a policy's should be
    EXECUTE format('SELECT extract(epoch FROM now() - (SELECT min(%1$I) FROM %2$s))::float8,'
                   ' EXISTS (SELECT FROM %2$s WHERE %1$I IS NULL)', p_column, p_table)
       INTO seconds, never_rotated;
END
$$;

COMMENT ON FUNCTION token_rotation.oldest_token(regclass, name) IS
    'Age in seconds of the oldest rotation time in a table''s rotated-at column, and whether a row has none; '
    'NULL where reading it could run code of a role the caller does not trust.';

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
        last_message := token_rotation.redact(v_job.return_message);
        SELECT r.run_id, r.state::text INTO run_id, run_state
          FROM token_rotation.runs r
         WHERE r.target = v_job.target AND r.started_at >= v_job.start_time - interval '1 minute'
         ORDER BY r.run_id DESC LIMIT 1;
        v_column := substring(v_job.command FROM 'p_rotated_at_column => ''([^'']+)''');
        SELECT o.seconds, o.never_rotated INTO oldest_token_seconds, never_rotated
          FROM token_rotation.oldest_token(v_job.target, v_column::name) AS o;
        RETURN NEXT;
    END LOOP;
END
$$;

COMMENT ON FUNCTION token_rotation.schedules() IS
    'The rotation schedules (pg_cron jobs) the caller can see: last firing, the run it made, oldest token age.';
