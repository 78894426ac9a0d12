-- token_rotation_internal.run_options(table, given): the options a CALL of rotate() works with: the documented
-- defaults, overlaid by the options stored with the table's open run (runs.options), overlaid by the ones this
-- CALL gives (its non-NULL parameters, as jsonb). So a bare CALL resumes a run with the options it was started
-- with (or changed to by set_options()), and a value that is given wins. The default target batch time is left
-- out for a new run given a batch size without a target (fixed batches: p_batch_size => 5000 means 5000 rows a
-- batch) and for an open run, which keeps its own batching (it stored a target if it had one). Keys: column, batch_size, sleep,
-- lock_timeout, lock_retries, target_batch_time, max_replication_lag, max_replay_lag, max_archive_queue,
-- pause_on_autovacuum, synchronous_commit, format, prefix, previous_column, rotated_at_column (intervals as
-- their text form). Called by rotate() before its checks:
--   SELECT token_rotation_internal.run_options('public.tickets', '{"sleep": "00:00:00.1"}');
CREATE OR REPLACE FUNCTION token_rotation_internal.run_options(
      p_table regclass
    , p_given jsonb
)
RETURNS jsonb
LANGUAGE sql STABLE
SET search_path = pg_catalog, pg_temp
AS $$
    SELECT CASE WHEN o.options IS NOT NULL OR (g.given ? 'batch_size' AND NOT g.given ? 'target_batch_time')
                THEN token_rotation.default_options() - 'target_batch_time'
                ELSE token_rotation.default_options() END
           || coalesce(o.options, '{}') || g.given
      FROM (SELECT jsonb_strip_nulls(coalesce(p_given, '{}')) AS given) g
      LEFT JOIN (SELECT r.options FROM token_rotation.runs r
                  WHERE r.target = p_table AND r.state IN ('active', 'paused')) o ON true
$$;

COMMENT ON FUNCTION token_rotation_internal.run_options(regclass, jsonb) IS
    'The options of a rotate() CALL: defaults, overlaid by those stored with the open run, overlaid by the given ones.';
