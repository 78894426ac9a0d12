-- token_rotation.cancel(table): cancels a table's open run: its workers stop after their batch, and the next
-- CALL starts a new run. Returns the run id:
--   SELECT token_rotation.cancel('public.tickets');
CREATE OR REPLACE FUNCTION token_rotation.cancel(p_table regclass) RETURNS bigint
LANGUAGE sql VOLATILE SET search_path = pg_catalog, pg_temp
AS $$ SELECT token_rotation_internal.set_run_state(p_table, 'cancelled') $$;

COMMENT ON FUNCTION token_rotation.cancel(regclass) IS
    'Cancels the open run of a table: workers stop after their batch; the next CALL starts anew. Returns the run id.';
