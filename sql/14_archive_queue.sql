-- token_rotation_internal.archive_queue(): WAL files waiting to be archived (the .ready files of
-- pg_wal/archive_status): GitLab's WAL archive queue indicator. It grows when archive_command fails or falls
-- behind, and a rotation writes WAL fast: rotate() waits while it is over p_max_archive_queue. 0 with
-- archive_mode off (any role can read that setting). Otherwise listing that directory needs pg_monitor (or
-- superuser): without it, 42501.
--   SELECT token_rotation_internal.archive_queue();
CREATE OR REPLACE FUNCTION token_rotation_internal.archive_queue()
RETURNS bigint
LANGUAGE sql VOLATILE
SET search_path = pg_catalog, pg_temp
AS $$
    SELECT CASE WHEN current_setting('archive_mode') = 'off' THEN 0
                ELSE (SELECT count(*) FROM pg_ls_archive_statusdir() WHERE name LIKE '%.ready') END
$$;

COMMENT ON FUNCTION token_rotation_internal.archive_queue() IS
    'WAL files waiting to be archived (.ready in pg_wal/archive_status); needs pg_monitor.';
