-- token_rotation_internal.option_values(options): the options of a run that shape its batches and its waits, typed
-- (runs.options holds them as jsonb; jsonb_to_record() types them by its column list). These are the ones
-- set_options() may change while the run goes on: a worker reads the run's options before each batch and,
-- when they changed, takes the new values from here.
-- The column, key, format, prefix and grace columns are fixed for the life of a run. A key missing from
-- p_options is NULL (not set): pass default_options() || options for a complete set.
--   SELECT * FROM token_rotation_internal.option_values(token_rotation.default_options());
CREATE OR REPLACE FUNCTION token_rotation_internal.option_values(
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
    SELECT o.* FROM pg_catalog.jsonb_to_record(p_options) AS o(
        batch_size integer, sleep interval, lock_timeout interval, lock_retries integer, target_batch_time interval,
        max_replication_lag bigint, max_replay_lag interval, max_archive_queue integer, pause_on_autovacuum boolean,
        synchronous_commit boolean)
$$;

COMMENT ON FUNCTION token_rotation_internal.option_values(jsonb) IS
    'The options of a run that set_options() may change (batch size, sleep, lock timeout and retries, target '
    'batch time, health limits, synchronous commit), typed from runs.options.';
