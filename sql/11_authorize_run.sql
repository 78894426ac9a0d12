-- token_rotation_internal.authorize_run(run, slice, action): authorize() for the table and token column of a run; with
-- a slice, also that the slice belongs to the run and is claimed by this session (claim_slice() wrote its
-- backend_pid): a checkpoint is written only by the worker that rotated the batch. Raises 42501
-- insufficient_privilege otherwise, before anything is written.
--   PERFORM token_rotation_internal.authorize_run(7, 12, 'record a batch of');
CREATE OR REPLACE FUNCTION token_rotation_internal.authorize_run(
      p_run_id   bigint
    , p_slice_id bigint DEFAULT NULL
    , p_action   text   DEFAULT 'rotate'
)
RETURNS void
LANGUAGE plpgsql STABLE
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    v_run   record;
BEGIN
    SELECT r.target, r.token_column, s.slice_id, s.backend_pid INTO v_run
      FROM token_rotation.runs r
      LEFT JOIN token_rotation.slices s ON s.run_id = r.run_id AND s.slice_id = p_slice_id
     WHERE r.run_id = p_run_id;
    IF NOT FOUND THEN
        RAISE EXCEPTION 'run % does not exist', p_run_id
            USING ERRCODE = 'no_data_found', HINT = 'SELECT * FROM token_rotation.progress lists the runs';
    END IF;
    PERFORM token_rotation_internal.authorize(v_run.target, v_run.token_column, p_action);
    IF p_slice_id IS NOT NULL AND v_run.backend_pid IS DISTINCT FROM pg_backend_pid() THEN
        RAISE EXCEPTION 'slice % of run % is not claimed by this session', p_slice_id, p_run_id
            USING ERRCODE = 'insufficient_privilege',
                  DETAIL = CASE WHEN v_run.slice_id IS NULL THEN 'the run has no such slice'
                                ELSE format('it is claimed by backend %s', coalesce(v_run.backend_pid::text, 'none'))
                           END,
                  HINT = 'a slice''s checkpoint is written by the worker that claimed it: CALL token_rotation.rotate()';
    END IF;
END
$$;

COMMENT ON FUNCTION token_rotation_internal.authorize_run(bigint, bigint, text) IS
    'Raises 42501 unless the caller may act on the run (authorize()) and, with a slice, this session claimed it.';
