-- token_rotation_internal.citus_on_nodes(table, command): runs one SQL command on every node that holds a shard of a
-- Citus table, all at once (master_run_on_worker(), as the caller), and returns each node's answer: its name,
-- port, whether the command succeeded, and its result (the first value of its first row, or the error). For the
-- coordinator's questions to every node (census, progress, verify, cancel).
CREATE OR REPLACE FUNCTION token_rotation_internal.citus_on_nodes(
      p_table   regclass
    , p_command text
    , OUT node  text
    , OUT port  integer
    , OUT ok    boolean
    , OUT result text
)
RETURNS SETOF record
LANGUAGE plpgsql VOLATILE
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    v_names text[];
    v_ports integer[];
BEGIN
    SELECT array_agg(d.node), array_agg(d.port) INTO v_names, v_ports
      FROM (SELECT DISTINCT c.node, c.port FROM token_rotation_internal.citus_shards(p_table) AS c) AS d;
    IF v_names IS NULL THEN
        RETURN;
    END IF;
    FOR node, port, ok, result IN
        EXECUTE pg_catalog.format('SELECT * FROM %s($1, $2, $3, true)', 'pg_catalog.master_run_on_worker')
          USING v_names, v_ports, array_fill(p_command, ARRAY[cardinality(v_names)])
    LOOP
        RETURN NEXT;
    END LOOP;
END
$$;

COMMENT ON FUNCTION token_rotation_internal.citus_on_nodes(regclass, text) IS
    'Runs one command on every node holding a shard of a Citus table, at once; returns each node''s answer.';
