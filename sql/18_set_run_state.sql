-- token_rotation_internal.set_run_state(table, state): sets the state of a table's open run (active, paused,
-- cancelled) for pause(), unpause() and cancel(). The workers read the run's state before each batch.
-- Only a role that may rotate the table (UPDATE on its token column) or a member of the tool's owner role
-- controls a run (authorize_run(); 42501 otherwise): set_run_state() runs as the tool's owner (SECURITY
-- DEFINER), which alone writes the tool's tables. Returns the run id it changed.
--   SELECT token_rotation_internal.set_run_state('public.tickets', 'paused');
CREATE OR REPLACE FUNCTION token_rotation_internal.set_run_state(p_table regclass, p_state text)
RETURNS bigint
LANGUAGE plpgsql VOLATILE
SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    v_run_id bigint;
BEGIN
    IF p_state NOT IN ('active', 'paused', 'cancelled') THEN
        RAISE EXCEPTION 'cannot set a run to %', quote_literal(p_state)
            USING ERRCODE = 'invalid_parameter_value', HINT = 'use pause(), unpause() or cancel()';
    END IF;
    v_run_id := token_rotation_internal.open_run(p_table);
    PERFORM token_rotation_internal.authorize_run(v_run_id, NULL, 'control');
    UPDATE token_rotation.runs SET state = p_state, state_changed_at = clock_timestamp() WHERE run_id = v_run_id;
    PERFORM token_rotation_internal.citus_control(v_run_id);  -- a Citus distributed table: its shards' runs too
    RETURN v_run_id;
END
$$;

COMMENT ON FUNCTION token_rotation_internal.set_run_state(regclass, text) IS
    'Sets the state of a table''s open run (active, paused, cancelled); used by pause(), unpause(), cancel().';
