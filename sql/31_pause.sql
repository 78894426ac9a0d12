-- token_rotation.pause(table): pauses a table's open run from any session: its workers finish their batch and
-- wait, holding no row lock, their clock stopped (unpause() lifts it). Through set_run_state(), which checks
-- that the caller may control the run. Returns the run id:
--   SELECT token_rotation.pause('public.tickets');
CREATE OR REPLACE FUNCTION token_rotation.pause(p_table regclass) RETURNS bigint
LANGUAGE sql VOLATILE SET search_path = pg_catalog, pg_temp
AS $$ SELECT token_rotation_internal.set_run_state(p_table, 'paused') $$;

COMMENT ON FUNCTION token_rotation.pause(regclass) IS
    'Pauses the open run of a table: its workers wait after their current batch. Returns the run id.';
