-- token_rotation.run_options(table, given): the options a CALL of rotate() works with: the documented
-- defaults, overlaid by the options stored with the table's open run (runs.options), overlaid by the ones this
-- CALL gives (its non-NULL parameters, as jsonb). So a bare CALL resumes a run with the options it was started
-- with (or changed to by set_options()), and a value that is given wins. Keys: column, batch_size, sleep,
-- lock_timeout, lock_retries, target_batch_time, max_replication_lag, max_replay_lag, max_archive_queue,
-- pause_on_autovacuum, synchronous_commit, format, prefix, previous_column, rotated_at_column (intervals as
-- their text form). Called by rotate() before its checks:
--   SELECT token_rotation.run_options('public.tickets', '{"sleep": "00:00:00.1"}');
CREATE OR REPLACE FUNCTION token_rotation.run_options(
      p_table regclass
    , p_given jsonb
)
RETURNS jsonb
LANGUAGE sql STABLE
SET search_path = pg_catalog, pg_temp
AS $$
    SELECT token_rotation.default_options()
           || coalesce((SELECT r.options FROM token_rotation.runs r
                         WHERE r.target = p_table AND r.state IN ('active', 'paused')), '{}')
           || jsonb_strip_nulls(coalesce(p_given, '{}'))
$$;

COMMENT ON FUNCTION token_rotation.run_options(regclass, jsonb) IS
    'The options of a rotate() CALL: defaults, overlaid by those stored with the open run, overlaid by the given ones.';
