-- token_rotation_internal.record_batch(...): the checkpoint of one batch, written in the batch's own transaction by
-- rotate() right after its UPDATE, so that a batch and its checkpoint commit together or not at all: the
-- slice's last_key and counters (its working time booked up to now from p_mark), one row of the progress log
-- (token_rotation.batches), and, when this batch ended the last unfinished slice, the run's finish.
-- Returns the slice as updated (heartbeat_at is the batch's finish). It runs as the tool's owner (SECURITY
-- DEFINER) and writes only for the session that claimed the slice, acting for a role that may rotate the
-- table (authorize_run()): a checkpoint cannot be moved by anyone else. Called by rotate():
--   v_slice := token_rotation_internal.record_batch(v_run.run_id, v_slice.slice_id, v_after, v_upper, ...);
CREATE OR REPLACE FUNCTION token_rotation_internal.record_batch(
      p_run_id     bigint
    , p_slice_id   bigint
    , p_after      text[]
    , p_upper      text[]
    , p_rows       bigint
    , p_batch_size integer
    , p_started    timestamptz
    , p_mark       timestamptz
    , p_retries    integer
    , p_last       boolean
)
RETURNS token_rotation.slices
LANGUAGE plpgsql VOLATILE
SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    v_now   timestamptz := clock_timestamp();
    v_slice token_rotation.slices;
BEGIN
    PERFORM token_rotation_internal.authorize_run(p_run_id, p_slice_id, 'record a batch of');
    UPDATE token_rotation.slices
       SET last_key = p_upper, rows_done = rows_done + p_rows, batches_done = batches_done + 1,
           elapsed = elapsed + (v_now - p_mark), heartbeat_at = v_now, done = p_last,
           batch_size = p_batch_size, throttled = NULL
     WHERE slice_id = p_slice_id
    RETURNING * INTO v_slice;
    INSERT INTO token_rotation.batches
           (slice_id, batch_no, run_id, after_key, last_key, rows, batch_size, started_at, finished_at, retries)
    VALUES (p_slice_id, v_slice.batches_done, p_run_id, p_after, p_upper, p_rows, p_batch_size,
            p_started, v_now, p_retries);
    IF p_last THEN
        -- one finisher at a time. FOR NO KEY UPDATE, not FOR UPDATE: the INSERT into batches above holds
        -- a FOR KEY SHARE lock on this row (its foreign key), and so does every other worker's batch;
        -- FOR UPDATE would wait for theirs while they wait for ours when two slices end together.
        PERFORM FROM token_rotation.runs WHERE run_id = p_run_id FOR NO KEY UPDATE;
        IF NOT EXISTS (SELECT FROM token_rotation.slices WHERE run_id = p_run_id AND NOT done) THEN
            PERFORM token_rotation_internal.finish_run(p_run_id, v_now);
        END IF;
    END IF;
    RETURN v_slice;
END
$$;

COMMENT ON FUNCTION token_rotation_internal.record_batch(bigint, bigint, text[], text[], bigint, integer, timestamptz,
                                                timestamptz, integer, boolean) IS
    'Checkpoint of one batch in its transaction: slice last_key and counters, a progress-log row, the run''s '
    'finish after its last slice.';
