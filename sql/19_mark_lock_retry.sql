-- token_rotation_internal.mark_lock_retry(...): after a batch of rotate() was rolled back because its rows stayed
-- locked (SQLSTATE 55P03 lock timeout, or 40P01 when it was the victim of a deadlock), records on the slice
-- why it waits and with which smaller batch it retries ('lock timeout 2 of 5, batch now 750'; the progress
-- view shows it), and says so in a NOTICE unless p_quiet. Called by rotate(), then it COMMITs and backs off.
-- It runs as the tool's owner (SECURITY DEFINER), only for the session that claimed the slice, acting for a
-- role that may rotate the table (authorize_run()).
CREATE OR REPLACE FUNCTION token_rotation_internal.mark_lock_retry(
      p_run_id     bigint
    , p_slice_id   bigint
    , p_err_state  text
    , p_fails      integer
    , p_retries    integer
    , p_batch_size integer
    , p_quiet      boolean
)
RETURNS void
LANGUAGE plpgsql VOLATILE
SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    v_what text := CASE p_err_state WHEN '40P01' THEN 'deadlock' ELSE 'lock timeout' END;
BEGIN
    PERFORM token_rotation_internal.authorize_run(p_run_id, p_slice_id, 'record a batch of');
    UPDATE token_rotation.slices
       SET throttled = format('%s %s of %s, batch now %s', v_what, p_fails, p_retries, p_batch_size)
     WHERE slice_id = p_slice_id;
    IF NOT p_quiet THEN
        RAISE NOTICE 'run %: rows locked by another transaction (% %/%), retrying with batches of %',
            p_run_id, v_what, p_fails, p_retries, p_batch_size;
    END IF;
END
$$;

COMMENT ON FUNCTION token_rotation_internal.mark_lock_retry(bigint, bigint, text, integer, integer, integer, boolean) IS
    'Records on a slice (and in a NOTICE) that its batch hit locked rows and is retried smaller.';
