-- token_rotation_internal.wait_reason(run_id): what rotate() reads of its run before each batch (one row of runs, by
-- its primary key): the run's state (a cancelled run stops the worker), its options (a worker that sees them
-- changed by set_options() or by another session's CALL takes the new values at once), and why it must wait,
-- if it must: 'paused', or the reason of a hold that has not run out (hold(): a throttle query of the CLI or
-- any outside check). NULL to go on. The server's health (health_reason()) is checked by rotate() apart, at
-- most once per limits().health_interval. Its SET clause costs a search_path switch per batch, a few
-- microseconds against a batch of milliseconds: no routine of the tool resolves names through the caller's path.
--   SELECT * FROM token_rotation_internal.wait_reason(42);
CREATE OR REPLACE FUNCTION token_rotation_internal.wait_reason(
      p_run_id bigint
    , OUT state   text
    , OUT reason  text
    , OUT options jsonb
)
LANGUAGE sql STABLE
SET search_path = pg_catalog, pg_temp
AS $$
    SELECT r.state,
           CASE WHEN r.state = 'paused' THEN 'paused'
                WHEN r.hold_until > pg_catalog.clock_timestamp() THEN r.hold_reason END,
           r.options
      FROM token_rotation.runs r
     WHERE r.run_id = p_run_id
$$;

COMMENT ON FUNCTION token_rotation_internal.wait_reason(bigint) IS
    'State, options and wait reason (paused, or an unexpired hold) of a run, read by rotate() before each batch.';
