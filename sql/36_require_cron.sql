-- token_rotation_internal.require_cron(): raises a clear error unless pg_cron is preloaded and installed in this
-- database (55000 object_not_in_prerequisite_state), naming the package, the setting and the statement.
CREATE OR REPLACE FUNCTION token_rotation_internal.require_cron()
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

COMMENT ON FUNCTION token_rotation_internal.require_cron() IS
    'Raises 55000 with what to install and set unless pg_cron is preloaded and installed in this database.';
