-- token_rotation_internal.open_run(table): the id of a table's open (active or paused) run, its row locked until the
-- end of the transaction, for the functions that change an open run from any session (pause(), unpause(),
-- cancel(), hold(), set_options()). A table without one raises no_data_found (P0002).
--   SELECT token_rotation_internal.open_run('public.tickets');
CREATE OR REPLACE FUNCTION token_rotation_internal.open_run(p_table regclass)
RETURNS bigint
LANGUAGE plpgsql VOLATILE
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    v_run_id bigint;
BEGIN
    SELECT r.run_id INTO v_run_id
      FROM token_rotation.runs r
     WHERE r.target = p_table AND r.state IN ('active', 'paused')
       FOR UPDATE;
    IF v_run_id IS NULL THEN
        RAISE EXCEPTION 'table % has no open run', p_table
            USING ERRCODE = 'no_data_found',
                  HINT = 'SELECT * FROM token_rotation.progress lists the runs and their states';
    END IF;
    RETURN v_run_id;
END
$$;

COMMENT ON FUNCTION token_rotation_internal.open_run(regclass) IS
    'The id of a table''s open run, its row locked; no_data_found when it has none.';
