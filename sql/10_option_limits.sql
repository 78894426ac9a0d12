-- token_rotation_internal.option_limits(): the bounds of a run's durations, which check_arguments() enforces for
-- rotate(), set_options() and plan() alike before anything is stored: a lock timeout from 1 ms (PostgreSQL's
-- unit: a smaller one would round to 0, which means wait for ever) to the largest value lock_timeout can hold
-- (INT_MAX milliseconds, about 24.8 days: a larger one would be stored and then fail at every batch of every
-- resume); a sleep between batches of at most an hour, a target batch time of at most a minute (a batch holds
-- its row locks that long) and a replay-lag limit of at most a day (beyond it, watching is not watching).
--   SELECT * FROM token_rotation_internal.option_limits();
CREATE OR REPLACE FUNCTION token_rotation_internal.option_limits(
      OUT min_lock_timeout      interval
    , OUT max_lock_timeout      interval
    , OUT max_sleep             interval
    , OUT max_target_batch_time interval
    , OUT max_replay_lag        interval
)
LANGUAGE sql IMMUTABLE PARALLEL SAFE
SET search_path = pg_catalog, pg_temp
AS $$
    SELECT interval '1 millisecond', interval '2147483647 milliseconds', interval '1 hour', interval '1 minute',
           interval '1 day'
$$;

COMMENT ON FUNCTION token_rotation_internal.option_limits() IS
    'Bounds of a run''s durations (lock timeout, sleep, target batch time, replay lag), enforced by '
    'check_arguments() before anything is stored.';
