-- token_rotation_internal.citus_node(): this server's place in a Citus cluster: 'coordinator', 'worker', or NULL
-- without Citus (or before any node was added).
CREATE OR REPLACE FUNCTION token_rotation_internal.citus_node()
RETURNS text
LANGUAGE plpgsql STABLE
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    v_group integer;
BEGIN
    IF pg_catalog.to_regclass('pg_catalog.pg_dist_local_group') IS NULL THEN
        RETURN NULL;
    END IF;
    -- a formatted EXECUTE, as every use of a Citus object here: they exist only where Citus is installed, and
    -- plpgsql_check would resolve a constant query on a server without it
    EXECUTE pg_catalog.format('SELECT groupid FROM %s', 'pg_catalog.pg_dist_local_group') INTO v_group;
    RETURN CASE WHEN v_group = 0 THEN 'coordinator' WHEN v_group > 0 THEN 'worker' END;
END
$$;

COMMENT ON FUNCTION token_rotation_internal.citus_node() IS
    'This server in a Citus cluster: coordinator, worker, or NULL without Citus.';
