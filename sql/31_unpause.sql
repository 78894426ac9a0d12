-- token_rotation.unpause(table): lifts the pause of a table's open run: its waiting workers go on. (To
-- continue a run nobody works on, CALL token_rotation.rotate() again.) Returns the run id:
--   SELECT token_rotation.unpause('public.tickets');
CREATE OR REPLACE FUNCTION token_rotation.unpause(p_table regclass) RETURNS bigint
LANGUAGE sql VOLATILE SET search_path = pg_catalog, pg_temp
AS $$ SELECT token_rotation_internal.set_run_state(p_table, 'active') $$;

COMMENT ON FUNCTION token_rotation.unpause(regclass) IS
    'Lifts the pause of a table''s run: its waiting workers go on. Returns the run id.';
