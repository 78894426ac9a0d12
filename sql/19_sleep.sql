-- token_rotation_internal.sleep(seconds): rotate()'s sleeps (p_sleep between batches, 1 s while waiting, the back-off
-- after a lock timeout): pg_sleep, except that a cancel (Ctrl-C, pg_cancel_backend, statement_timeout) during
-- the sleep is returned in err_state / err_msg instead of raised, so that rotate() can still book its time,
-- release its slice and report, as it does for a cancel during a batch. Called between transactions only:
--   SELECT * FROM token_rotation_internal.sleep(0.5);
CREATE OR REPLACE FUNCTION token_rotation_internal.sleep(
      p_seconds     double precision
    , OUT err_state text
    , OUT err_msg   text
)
LANGUAGE plpgsql VOLATILE
SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
    PERFORM pg_sleep(p_seconds);
EXCEPTION WHEN query_canceled THEN
    err_state := SQLSTATE;
    err_msg := SQLERRM;
END
$$;

COMMENT ON FUNCTION token_rotation_internal.sleep(double precision) IS
    'pg_sleep for rotate(): a cancel during the sleep is returned in err_state/err_msg, not raised.';
