-- token_rotation.wait_reason(run_id, max_replication_lag): what rotate() reads before each batch: the run's
-- state (a cancelled run stops the worker) and why it must wait, if it must (throttle_reason(): paused,
-- replica lag over p_max_replication_lag, or a lag that cannot be measured; NULL to go on). The lag is only
-- measured when a maximum is given; a failure to measure it is kept as its SQLSTATE, not raised. No SET clause
-- (it runs before every batch; a SET clause costs a search_path switch per call): every name is qualified.
--   SELECT * FROM token_rotation.wait_reason(42, 64 * 1024 * 1024);
CREATE OR REPLACE FUNCTION token_rotation.wait_reason(
      p_run_id              bigint
    , p_max_replication_lag bigint
    , OUT state             text
    , OUT reason            text
)
LANGUAGE plpgsql VOLATILE
AS $$
DECLARE
    v_lag       bigint;
    v_lag_error text;
BEGIN
    SELECT r.state INTO state FROM token_rotation.runs r WHERE r.run_id = p_run_id;
    IF state <> 'paused' AND p_max_replication_lag IS NOT NULL THEN
        BEGIN
            v_lag := token_rotation.replication_lag();
        EXCEPTION WHEN OTHERS THEN
            v_lag_error := SQLSTATE;
        END;
    END IF;
    reason := token_rotation.throttle_reason(state, v_lag, p_max_replication_lag, v_lag_error);
END
$$;

COMMENT ON FUNCTION token_rotation.wait_reason(bigint, bigint) IS
    'State of a run and why its worker must wait before the next batch (throttle_reason), NULL to go on.';
