-- token_rotation.option_values(options): the options of a run that shape its batches and its waits, typed
-- (runs.options holds them as jsonb). These are the ones set_options() may change while the run goes on: a
-- worker reads the run's options before each batch and, when they changed, takes the new values from here.
-- The column, key, format, prefix and grace columns are fixed for the life of a run. A key missing from
-- p_options is NULL (not set): pass default_options() || options for a complete set.
--   SELECT * FROM token_rotation.option_values(token_rotation.default_options());
CREATE OR REPLACE FUNCTION token_rotation.option_values(
      p_options                 jsonb
    , OUT batch_size            integer
    , OUT sleep                 interval
    , OUT lock_timeout          interval
    , OUT lock_retries          integer
    , OUT target_batch_time     interval
    , OUT max_replication_lag   bigint
    , OUT max_replay_lag        interval
    , OUT max_archive_queue     integer
    , OUT pause_on_autovacuum   boolean
    , OUT synchronous_commit    boolean
)
LANGUAGE sql IMMUTABLE PARALLEL SAFE
SET search_path = pg_catalog, pg_temp
AS $$
    SELECT (p_options->>'batch_size')::integer, (p_options->>'sleep')::interval,
           (p_options->>'lock_timeout')::interval, (p_options->>'lock_retries')::integer,
           (p_options->>'target_batch_time')::interval, (p_options->>'max_replication_lag')::bigint,
           (p_options->>'max_replay_lag')::interval, (p_options->>'max_archive_queue')::integer,
           (p_options->>'pause_on_autovacuum')::boolean, (p_options->>'synchronous_commit')::boolean
$$;

COMMENT ON FUNCTION token_rotation.option_values(jsonb) IS
    'The options of a run that set_options() may change (batch size, sleep, lock timeout and retries, target '
    'batch time, health limits, synchronous commit), typed from runs.options.';
