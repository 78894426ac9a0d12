-- token_rotation_internal.mark_waiting(run_id, slice_id, reason, previous, mark, quiet): records on a slice why its
-- worker waits (the progress view shows it), says so in a NOTICE when the reason is new (unless p_quiet),
-- and returns the working clock's new mark: a paused slice books its working time up to now and its clock
-- stops, so paused time is not working time (only the first check of a pause books: the later ones, a
-- second apart, book nothing, or each would add the few milliseconds since the worker woke, and the ETA a
-- DBA reads would creep while paused); while a replica lags the clock runs on. Called by rotate()
-- before it COMMITs and sleeps:
--   v_mark := token_rotation_internal.mark_waiting(v_run.run_id, v_slice.slice_id, 'paused', NULL, v_mark, false);
-- It runs as the tool's owner (SECURITY DEFINER), only for the session that claimed the slice, acting for a
-- role that may rotate the table (authorize_run()).
CREATE OR REPLACE FUNCTION token_rotation_internal.mark_waiting(
      p_run_id   bigint
    , p_slice_id bigint
    , p_reason   text
    , p_previous text
    , p_mark     timestamptz
    , p_quiet    boolean
)
RETURNS timestamptz
LANGUAGE plpgsql VOLATILE
SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    v_now timestamptz := clock_timestamp();
BEGIN
    PERFORM token_rotation_internal.authorize_run(p_run_id, p_slice_id, 'record a batch of');
    UPDATE token_rotation.slices
       SET throttled = p_reason, heartbeat_at = v_now,
           elapsed = elapsed + CASE WHEN p_reason = 'paused' AND p_previous IS DISTINCT FROM 'paused'
                                    THEN v_now - p_mark ELSE '0' END
     WHERE slice_id = p_slice_id;
    IF NOT p_quiet AND p_reason IS DISTINCT FROM p_previous THEN
        RAISE NOTICE 'run %: waiting: %', p_run_id, p_reason;
    END IF;
    RETURN CASE WHEN p_reason = 'paused' THEN v_now ELSE p_mark END;
END
$$;

COMMENT ON FUNCTION token_rotation_internal.mark_waiting(bigint, bigint, text, text, timestamptz, boolean) IS
    'Records why a slice''s worker waits (NOTICE when new); books the working time of a paused slice. Returns '
    'the new clock mark.';
