-- token_rotation.mark_waiting(slice_id, reason, mark): records on a slice why its worker waits (the
-- progress view shows it) and returns the working clock's new mark: a paused slice books its working time
-- up to now and its clock stops, so paused time is not working time; while a replica lags the clock runs on.
-- Called by rotate() before it sleeps:
--   v_mark := token_rotation.mark_waiting(v_slice.slice_id, 'paused', v_mark);
CREATE OR REPLACE FUNCTION token_rotation.mark_waiting(
      p_slice_id bigint
    , p_reason   text
    , p_mark     timestamptz
)
RETURNS timestamptz
LANGUAGE plpgsql VOLATILE
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    v_now timestamptz := clock_timestamp();
BEGIN
    UPDATE token_rotation.slices
       SET throttled = p_reason, heartbeat_at = v_now,
           elapsed = elapsed + CASE WHEN p_reason = 'paused' THEN v_now - p_mark ELSE '0' END
     WHERE slice_id = p_slice_id;
    RETURN CASE WHEN p_reason = 'paused' THEN v_now ELSE p_mark END;
END
$$;

COMMENT ON FUNCTION token_rotation.mark_waiting(bigint, text, timestamptz) IS
    'Records why a slice''s worker waits; books the working time of a paused slice. Returns the new clock mark.';
