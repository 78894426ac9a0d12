-- token_rotation.default_options(): the documented defaults of a run's options (runs.options keys), which a
-- new run takes for every option it is not given: column token, batches of 3000, no sleep, lock timeout 1 s
-- and 5 retries, asynchronous commit of the batches, no health limit (target_batch_time, max_replication_lag,
-- max_replay_lag and max_archive_queue absent: not watched), autovacuum not waited for. Intervals in their
-- text form. Used by run_options(), set_options() and plan():
--   SELECT token_rotation.default_options();
CREATE OR REPLACE FUNCTION token_rotation.default_options()
RETURNS jsonb
LANGUAGE sql IMMUTABLE PARALLEL SAFE
SET search_path = pg_catalog, pg_temp
AS $$
    SELECT '{"column": "token", "batch_size": 3000, "sleep": "00:00:00", "lock_timeout": "00:00:01",
             "lock_retries": 5, "synchronous_commit": false, "pause_on_autovacuum": false}'::jsonb
$$;

COMMENT ON FUNCTION token_rotation.default_options() IS
    'The defaults of a run''s options (runs.options): what a new run takes for an option it is not given.';
