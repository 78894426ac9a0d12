-- The Citus functions that the progress view and table_sizes() read (they come before them); the rotation of
-- a distributed table itself is in 37_citus.sql, whose head says how it works.

-- token_rotation.citus_shards(table): the shards of a Citus table and the node of each (one row per placement:
-- a reference table has one on every node); no rows for a table Citus does not manage, or without Citus.
--   SELECT * FROM token_rotation.citus_shards('public.tickets');
CREATE OR REPLACE FUNCTION token_rotation.citus_shards(
      p_table   regclass
    , OUT kind    text     -- hash, single (one shard: schema-based sharding, a Citus local table), reference
    , OUT shardid bigint
    , OUT shard   text     -- the shard's name on its node, schema-qualified (shard_name() leaves out public)
    , OUT node    text
    , OUT port    integer
)
RETURNS SETOF record
LANGUAGE plpgsql STABLE
SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
    IF pg_catalog.to_regclass('pg_catalog.pg_dist_partition') IS NULL THEN
        RETURN;
    END IF;
    -- @plpgsql_check_options: extra_warnings = false
    -- (its OUT values are set by RETURN QUERY EXECUTE, formatted, as every use of a Citus object here: they
    -- exist only where Citus is installed, and plpgsql_check would resolve a constant query without it)
    RETURN QUERY EXECUTE pg_catalog.format(
        'SELECT CASE WHEN p.repmodel = ''t'' THEN ''reference'' WHEN p.partmethod = ''h'' THEN ''hash''
                     ELSE ''single'' END,
                s.shardid, CASE WHEN n.nspname = ''public'' THEN ''public.'' ELSE '''' END
                           || %1$s(p.logicalrelid, s.shardid), d.nodename::text, d.nodeport
           FROM pg_catalog.pg_dist_partition p
           JOIN pg_catalog.pg_class c ON c.oid = p.logicalrelid
           JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace
           JOIN pg_catalog.pg_dist_shard s ON s.logicalrelid = p.logicalrelid
           LEFT JOIN pg_catalog.pg_dist_placement pl ON pl.shardid = s.shardid
           LEFT JOIN pg_catalog.pg_dist_node d ON d.groupid = pl.groupid AND d.noderole = ''primary''
          WHERE p.logicalrelid = $1
          ORDER BY s.shardid, d.nodeport', 'pg_catalog.shard_name')
        USING p_table;
END
$$;

COMMENT ON FUNCTION token_rotation.citus_shards(regclass) IS
    'The shards of a Citus table (hash, single or reference) with the node of each placement; none without Citus.';

-- token_rotation.citus_node(): this server's place in a Citus cluster: 'coordinator', 'worker', or NULL
-- without Citus (or before any node was added).
CREATE OR REPLACE FUNCTION token_rotation.citus_node()
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

COMMENT ON FUNCTION token_rotation.citus_node() IS
    'This server in a Citus cluster: coordinator, worker, or NULL without Citus.';

-- token_rotation.citus_progress(run): the live progress of a coordinator's open run of a distributed table,
-- for the progress view: the rows done on every node now, and the working time (the waves booked, plus the
-- longest-working open shard run: the wave in progress). NULLs without Citus, or when a node does not answer
-- (the view then shows what the waves booked).
CREATE OR REPLACE FUNCTION token_rotation.citus_progress(
      p_run_id      bigint
    , OUT rows_done bigint
    , OUT elapsed   interval
)
LANGUAGE plpgsql STABLE
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    v_run   token_rotation.runs;
    v_nodes record;
    v_ok    boolean;
    v_text  text;
    v_open  float8 := 0;
BEGIN
    SELECT * INTO v_run FROM token_rotation.runs WHERE run_id = p_run_id;
    SELECT array_agg(d.node) AS names, array_agg(d.port) AS ports INTO v_nodes
      FROM (SELECT DISTINCT c.node, c.port FROM token_rotation.citus_shards(v_run.target) AS c) AS d;
    IF v_nodes.names IS NULL THEN
        RETURN;
    END IF;
    rows_done := 0;
    FOR v_ok, v_text IN
        EXECUTE pg_catalog.format('SELECT success, result FROM %s($1, $2, $3, true)',
                                  'pg_catalog.master_run_on_worker')
          USING v_nodes.names, v_nodes.ports,
                array_fill(pg_catalog.format('SELECT token_rotation.citus_node_progress(%L::jsonb)',
                                             jsonb_build_object('run', v_run.run_id,
                                                                'started', extract(epoch FROM v_run.started_at))),
                           ARRAY[cardinality(v_nodes.names)])
    LOOP
        IF NOT v_ok THEN
            rows_done := NULL;
            elapsed := NULL;
            RETURN;
        END IF;
        rows_done := rows_done + (v_text::jsonb->>'rows_done')::bigint;
        v_open := greatest(v_open, (v_text::jsonb->>'open_seconds')::float8);
    END LOOP;
    elapsed := v_run.elapsed + make_interval(secs => v_open);
END
$$;

COMMENT ON FUNCTION token_rotation.citus_progress(bigint) IS
    'Live rows done and working time of a distributed table''s open run, from every node (NULLs if one fails).';

-- token_rotation.citus_sizes(table): the size of a Citus distributed table over all its shards on every node
-- (its own relation on the coordinator holds no row), for table_sizes(): the heap and TOAST, the indexes, the
-- total.
CREATE OR REPLACE FUNCTION token_rotation.citus_sizes(
      p_table             regclass
    , OUT table_bytes     bigint
    , OUT indexes_bytes   bigint
    , OUT total_bytes     bigint
)
LANGUAGE plpgsql STABLE
SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
    EXECUTE pg_catalog.format('SELECT %1$s($1), %2$s($1) - %1$s($1), %2$s($1)', 'pg_catalog.citus_table_size',
                              'pg_catalog.citus_total_relation_size')
       INTO table_bytes, indexes_bytes, total_bytes USING p_table;
END
$$;

COMMENT ON FUNCTION token_rotation.citus_sizes(regclass) IS
    'Heap, index and total bytes of a Citus distributed table over all its shards.';
