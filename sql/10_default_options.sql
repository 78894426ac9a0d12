-- token_rotation.default_options(): the defaults of a run's options (runs.options keys), which a new run takes
-- for every option it is not given, whatever the way in (a bare CALL in psql, the CLI, Django, a schedule: the
-- only place they are written): column token, batches adapted to take about 10 ms each from a first batch of
-- 1000 rows (an application waiting on a row of a batch waits at most about that: BENCHMARKS.md, "How does my
-- application feel a run?"), no sleep, lock timeout 1 s and 5 retries, asynchronous commit of the batches, no
-- health limit (max_replication_lag, max_replay_lag and max_archive_queue absent: not watched), autovacuum not
-- waited for. A run given a batch size and no target batch time has fixed batches of that size (run_options()
-- leaves the default target out). Intervals in their text form. Used by run_options(), set_options() and plan():
--   SELECT token_rotation.default_options();
CREATE OR REPLACE FUNCTION token_rotation.default_options()
RETURNS jsonb
LANGUAGE sql IMMUTABLE PARALLEL SAFE
SET search_path = pg_catalog, pg_temp
AS $$
    SELECT '{"column": "token", "batch_size": 1000, "target_batch_time": "00:00:00.01",
             "sleep": "00:00:00", "lock_timeout": "00:00:01",
             "lock_retries": 5, "synchronous_commit": false, "pause_on_autovacuum": false}'::jsonb
$$;

COMMENT ON FUNCTION token_rotation.default_options() IS
    'The defaults of a run''s options (runs.options): what a new run takes for an option it is not given.';
