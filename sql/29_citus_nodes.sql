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

-- token_rotation.citus_on_nodes(table, command): runs one SQL command on every node that holds a shard of a
-- Citus table, all at once (master_run_on_worker(), as the caller), and returns each node's answer: its name,
-- port, whether the command succeeded, and its result (the first value of its first row, or the error). For the
-- coordinator's questions to every node (census, progress, verify, cancel).
CREATE OR REPLACE FUNCTION token_rotation.citus_on_nodes(
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
      FROM (SELECT DISTINCT c.node, c.port FROM token_rotation.citus_shards(p_table) AS c) AS d;
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

COMMENT ON FUNCTION token_rotation.citus_on_nodes(regclass, text) IS
    'Runs one command on every node holding a shard of a Citus table, at once; returns each node''s answer.';

-- token_rotation.citus_tag(run): the tag of a coordinator's run that its shards' runs carry (with the shard):
-- {"run", "started"}, the start as epoch seconds (a text form would follow the session's time zone).
CREATE OR REPLACE FUNCTION token_rotation.citus_tag(
      p_run token_rotation.runs
)
RETURNS jsonb
LANGUAGE sql IMMUTABLE
SET search_path = pg_catalog, pg_temp
AS $$
    SELECT jsonb_build_object('run', p_run.run_id, 'started', extract(epoch FROM p_run.started_at))
$$;

COMMENT ON FUNCTION token_rotation.citus_tag(token_rotation.runs) IS
    'The tag {"run", "started"} of a coordinator''s run that its shards'' runs carry.';

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
    v_ok    boolean;
    v_text  text;
    v_open  float8 := 0;
BEGIN
    SELECT * INTO v_run FROM token_rotation.runs WHERE run_id = p_run_id;
    FOR v_ok, v_text IN
        SELECT n.ok, n.result FROM token_rotation.citus_on_nodes(v_run.target, pg_catalog.format(
            'SELECT token_rotation.citus_node_progress(%L::jsonb)', token_rotation.citus_tag(v_run))) AS n
    LOOP
        IF NOT v_ok THEN
            rows_done := NULL;
            elapsed := NULL;
            RETURN;
        END IF;
        rows_done := coalesce(rows_done, 0) + (v_text::jsonb->>'rows_done')::bigint;
        v_open := greatest(v_open, (v_text::jsonb->>'open_seconds')::float8);
    END LOOP;
    IF rows_done IS NULL THEN  -- no node: not a Citus table (any more)
        RETURN;
    END IF;
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
