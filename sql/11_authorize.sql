-- token_rotation.authorize(table, column, action) and authorize_run(run, slice, action): the one check of a
-- right that every function writing the tool's tables makes where it writes (they run as the tool's owner,
-- SECURITY DEFINER). The caller (caller()) may act on a run when it may UPDATE the run's token column (the
-- right to rotate that table: a role that may write every token gains nothing by steering the bookkeeping),
-- or when it is a member of the role that owns the tool's schema. With a slice, authorize_run() also
-- checks that the slice belongs to the run and is claimed by this session (claim_slice() wrote its
-- backend_pid): a checkpoint is written only by the worker that rotated the batch. Anything else raises
-- 42501 insufficient_privilege, before anything is written.
--   PERFORM token_rotation.authorize('public.tickets', 'token', 'rotate');
--   PERFORM token_rotation.authorize_run(7, 12, 'record a batch of');
CREATE OR REPLACE FUNCTION token_rotation.authorize(
      p_table  regclass
    , p_column name
    , p_action text
)
RETURNS void
LANGUAGE plpgsql STABLE
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    v_role name := token_rotation.caller();
BEGIN
    IF coalesce(has_column_privilege(v_role, p_table::oid, p_column, 'UPDATE'), false)
       OR pg_has_role(v_role, (SELECT n.nspowner FROM pg_namespace n WHERE n.nspname = 'token_rotation'),
                      'MEMBER') THEN
        RETURN;
    END IF;
    RAISE EXCEPTION 'role % may not % the runs of %', v_role, p_action, p_table::oid::regclass
        USING ERRCODE = 'insufficient_privilege',
              DETAIL = format('a run of a table is %s only by a role that may UPDATE its column %s',
                              CASE p_action WHEN 'rotate' THEN 'started, resumed and recorded'
                                            ELSE 'controlled' END, quote_ident(p_column)),
              HINT = 'GRANT UPDATE (token column) on the table to the role (sql/examples/grants.sql), or run '
                     'this as the table''s rotating role';
END
$$;

COMMENT ON FUNCTION token_rotation.authorize(regclass, name, text) IS
    'Raises 42501 unless the caller may UPDATE the table''s token column (or is of the tool''s owner role).';

CREATE OR REPLACE FUNCTION token_rotation.authorize_run(
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
    PERFORM token_rotation.authorize(v_run.target, v_run.token_column, p_action);
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

COMMENT ON FUNCTION token_rotation.authorize_run(bigint, bigint, text) IS
    'Raises 42501 unless the caller may act on the run (authorize()) and, with a slice, this session claimed it.';
