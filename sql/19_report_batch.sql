-- token_rotation_internal.report_batch(run, slice, rows, last): the NOTICE rotate() sends after each committed batch
-- unless p_quiet ("run 7 slice 1/2 batch 12: 3000 rows, 41.5% done, 98765 rows/s"): the run's percentage
-- over all its slices (99.9% at most until the run's last batch), the slice's own rate on its working clock.
CREATE OR REPLACE FUNCTION token_rotation_internal.report_batch(
      p_run   token_rotation.runs
    , p_slice token_rotation.slices
    , p_rows  bigint
    , p_last  boolean
)
RETURNS void
LANGUAGE plpgsql VOLATILE
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    v_run_done bigint := (SELECT sum(s.rows_done) FROM token_rotation.slices s WHERE s.run_id = p_run.run_id);
BEGIN
    RAISE NOTICE 'run % slice %/% batch %: % rows, % done, % rows/s', p_run.run_id, p_slice.slice_no,
        p_run.slices, p_slice.batches_done, p_rows,
        to_char(least(100.0 * v_run_done / greatest(p_run.rows_expected, 1),
                      CASE WHEN p_last AND p_run.slices = 1 THEN 100 ELSE 99.9 END), 'FM990.0"%"'),
        round(p_slice.rows_done / greatest(extract(epoch FROM p_slice.elapsed), 0.001));
END
$$;

COMMENT ON FUNCTION token_rotation_internal.report_batch(token_rotation.runs, token_rotation.slices, bigint, boolean) IS
    'The NOTICE after each committed batch of rotate(): batch number, rows, run percentage, slice rate.';
