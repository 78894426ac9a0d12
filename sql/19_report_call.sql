-- token_rotation_internal.report_call(...): the end of a CALL of rotate() as the caller sees it, after end_call()'s
-- COMMIT: the error that ended it, raised again in PostgreSQL's voice with its own SQLSTATE (57014 canceled,
-- 55P03 rows stayed locked, any other: the batch failed), each saying that every committed batch is kept
-- and how to resume; else a NOTICE on how it ended (unless p_quiet): stopped after p_max_batches, cancelled,
-- finished, or its slice finished while others run. A finished run that rotated fewer rows than it counted
-- gets a WARNING. p_stop is 'max_batches', 'window' (p_stop_at, p_max_duration), 'cancelled' or 'finished'. Called by rotate() only.
CREATE OR REPLACE FUNCTION token_rotation_internal.report_call(
      p_run          token_rotation.runs
    , p_target       text
    , p_slice_no     integer
    , p_stop         text
    , p_call_batches integer
    , p_err_state    text
    , p_err_msg      text
    , p_lock_fails   integer
    , p_lock_timeout interval
    , p_quiet        boolean
)
RETURNS void
LANGUAGE plpgsql VOLATILE
SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
    IF p_err_state = '57014' THEN  -- query_canceled: Ctrl-C, pg_cancel_backend, statement_timeout
        RAISE EXCEPTION 'rotation of % canceled', p_target
            USING ERRCODE = p_err_state,
                  DETAIL = format('run %s: %s of %s rows done; every committed batch is kept (%s)',
                                  p_run.run_id, p_run.rows_done, p_run.rows_expected, p_err_msg),
                  HINT = format('CALL token_rotation.rotate(%L) again to resume from the checkpoint', p_target);
    ELSIF p_err_state = '55P03' THEN
        RAISE EXCEPTION 'rows of % stayed locked through % lock timeouts of %', p_target, p_lock_fails, p_lock_timeout
            USING ERRCODE = p_err_state,
                  DETAIL = format('run %s: %s of %s rows done; every committed batch is kept',
                                  p_run.run_id, p_run.rows_done, p_run.rows_expected),
                  HINT = 'CALL again to resume; raise p_lock_timeout or p_lock_retries if the application '
                         'holds row locks for long';
    ELSIF p_err_state IS NOT NULL THEN
        RAISE EXCEPTION 'batch of run % on % failed: %', p_run.run_id, p_target, p_err_msg
            USING ERRCODE = p_err_state,
                  DETAIL = format('%s of %s rows done; every committed batch is kept',
                                  p_run.rows_done, p_run.rows_expected),
                  HINT = 'fix the cause, then CALL again to resume from the checkpoint';
    END IF;

    IF NOT p_quiet THEN
        RAISE NOTICE 'run %: %', p_run.run_id, CASE p_stop
            WHEN 'max_batches' THEN format('stopped after %s batch(es) as asked; CALL again to resume', p_call_batches)
            WHEN 'window' THEN format('stopped at the end of its window after %s batch(es), %s of %s rows done; '
                                      'CALL again to resume', p_call_batches, p_run.rows_done, p_run.rows_expected)
            WHEN 'cancelled' THEN 'cancelled; the next CALL starts a new run'
            ELSE CASE WHEN p_run.state = 'finished'
                      THEN format('finished: %s rows in %s', p_run.rows_done, date_trunc('second', p_run.elapsed))
                      ELSE format('slice %s finished; other slices are still running', p_slice_no) END
        END;
    END IF;
    -- fewer rows than counted: deleted meanwhile (fine), or updates that a BEFORE UPDATE trigger skipped by
    -- returning NULL (those rows keep their token: nothing in the table's definition shows it beforehand)
    IF p_run.state = 'finished' AND p_run.rows_expected_exact AND p_run.rows_done < p_run.rows_expected THEN
        RAISE WARNING 'run % of % finished with % row(s) fewer than the % counted at its start',
            p_run.run_id, p_target, p_run.rows_expected - p_run.rows_done, p_run.rows_expected
            USING DETAIL = 'rows deleted during the run are fine; a BEFORE UPDATE trigger that returns NULL '
                           'leaves its rows with their old token',
                  HINT = format('check the triggers of %s (\dS %s in psql)', p_target, p_target);
    END IF;
END
$$;

COMMENT ON FUNCTION token_rotation_internal.report_call(token_rotation.runs, text, integer, text, integer, text, text,
                                               integer, interval, boolean) IS
    'End of a rotate() CALL for its caller: raises the error that ended it (57014, 55P03, other) or notices how '
    'it ended; warns of rows fewer than counted.';
