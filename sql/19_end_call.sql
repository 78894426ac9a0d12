-- token_rotation_internal.end_call(run_id, slice_id, mark, err_state, err_msg): the bookkeeping at the end of a CALL
-- of rotate(), in its last transaction (a failed batch has been rolled back before): books the slice's
-- working time up to now from p_mark, releases it (its session-level advisory lock and backend_pid), brings
-- the run's totals up to date from its slices, and records the error that ended the CALL, if any, as
-- 'SQLSTATE: message' in runs.last_error, redacted (redact(): a trigger's message may quote a live token, and
-- every watching role reads that column). Returns the run as updated. Called by rotate(), then it COMMITs:
--   v_run := token_rotation_internal.end_call(v_run.run_id, v_slice.slice_id, v_mark, NULL, NULL);
-- It runs as the tool's owner (SECURITY DEFINER), only for the session that claimed the slice, acting for a
-- role that may rotate the table (authorize_run()).
CREATE OR REPLACE FUNCTION token_rotation_internal.end_call(
      p_run_id    bigint
    , p_slice_id  bigint
    , p_mark      timestamptz
    , p_err_state text
    , p_err_msg   text
)
RETURNS token_rotation.runs
LANGUAGE plpgsql VOLATILE
SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    v_now timestamptz := clock_timestamp();
    v_run token_rotation.runs;
BEGIN
    PERFORM token_rotation_internal.authorize_run(p_run_id, p_slice_id, 'record a batch of');
    UPDATE token_rotation.slices
       SET elapsed = elapsed + (v_now - p_mark),
           backend_pid = NULL, heartbeat_at = v_now, throttled = NULL
     WHERE slice_id = p_slice_id;
    UPDATE token_rotation.runs r
       SET rows_done = t.rows_done, elapsed = t.elapsed,
           last_error = CASE WHEN p_err_state IS NULL THEN r.last_error
                             ELSE format('%s: %s', p_err_state, token_rotation_internal.redact(p_err_msg)) END,
           last_error_at = CASE WHEN p_err_state IS NULL THEN r.last_error_at ELSE v_now END
      FROM (SELECT sum(s.rows_done) AS rows_done, max(s.elapsed) AS elapsed
              FROM token_rotation.slices s WHERE s.run_id = p_run_id) AS t
     WHERE r.run_id = p_run_id
    RETURNING r.* INTO v_run;
    PERFORM pg_advisory_unlock(token_rotation_internal.lock_space(), p_slice_id::integer);
    RETURN v_run;
END
$$;

COMMENT ON FUNCTION token_rotation_internal.end_call(bigint, bigint, timestamptz, text, text) IS
    'End of a rotate() CALL: books the slice''s time, releases it, updates the run''s totals, records the error.';
