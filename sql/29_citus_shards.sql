-- token_rotation_internal.citus_shards(table): the shards of a Citus table and the node of each (one row per placement:
-- a reference table has one on every node); no rows for a table Citus does not manage, or without Citus.
--   SELECT * FROM token_rotation_internal.citus_shards('public.tickets');
CREATE OR REPLACE FUNCTION token_rotation_internal.citus_shards(
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

COMMENT ON FUNCTION token_rotation_internal.citus_shards(regclass) IS
    'The shards of a Citus table (hash, single or reference) with the node of each placement; none without Citus.';
